"""Calibration files at their edges: bound to the weights (not the file's
bytes), the classes and the model definition; every field checked on
reading; the old schema read; ``tools/calibrate_ood.py``'s ``--out`` and
inputs refused before any work."""
import copy
import json
import os

import pytest
import torch

from conftest import STREET_CONFIG
from mmseg_ood.errors import (DamagedFileError, InvalidValueError,
                              MissingInputError, OutputPathError)
from mmseg_ood.formats.threshold_file import (SCHEMA_VERSION,
                                              CalibrationMismatchError,
                                              OODCalibration, fit_sha256,
                                              model_definition)
from mmseg_ood.utils import file_sha256, state_dict_sha256

CLASSES = ['road', 'sidewalk', 'building', 'vegetation', 'sky', 'car']


def _weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {'backbone.w': torch.randn(3, 4, generator=g),
            'decode_head.conv_seg.weight': torch.randn(6, 8, 1, 1,
                                                       generator=g),
            'decode_head.conv_seg.bias': torch.randn(6, generator=g)}


@pytest.fixture
def ckpt(tmp_path):
    path = str(tmp_path / 'model.pth')
    torch.save({'state_dict': _weights(), 'meta': {'iter': 300}}, path)
    return path


@pytest.fixture(scope='module')
def street_model_cfg():
    from mmengine.config import Config
    return Config.fromfile(STREET_CONFIG).model


def _calibration(ckpt, **kw):
    args = dict(scorer_name='energy', scorer_config={'type': 'energy'},
                threshold=-3.5, rule='id_fpr', target=0.01, dataset='val',
                state_dict_sha256=state_dict_sha256(torch.load(ckpt)),
                model=dict(config='street.py', checkpoint=ckpt,
                           num_classes=6, classes=list(CLASSES)))
    args.update(kw)
    return OODCalibration(**args)


def _no_temp_files(folder):
    return not [n for n in os.listdir(folder) if '.tmp' in n]


# the file -----------------------------------------------------------------
def test_round_trip_writes_the_schema(tmp_path, ckpt, street_model_cfg):
    c = _calibration(ckpt, model=dict(
        checkpoint=ckpt, num_classes=6, classes=CLASSES,
        definition=model_definition(street_model_cfg)))
    path = c.save(str(tmp_path / 'calibration.json'))
    d = json.load(open(path))
    assert d['schema_version'] == SCHEMA_VERSION == d['version']
    assert d['model']['state_dict_sha256'] == c.state_dict_sha256
    assert 'checkpoint_sha256' not in d['model']
    assert d['fit_sha256'] == fit_sha256('energy', {'type': 'energy'}, None,
                                         -3.5)
    back = OODCalibration.load(str(tmp_path))
    assert back.to_dict() == c.to_dict()
    assert back.schema_version == SCHEMA_VERSION
    assert _no_temp_files(tmp_path)


def test_same_weights_resaved_or_converted_are_accepted(tmp_path, ckpt):
    c = _calibration(ckpt)
    w = _weights()
    variants = {
        'weights only': w,
        'ddp prefix': {'state_dict': {'module.' + k: v
                                      for k, v in w.items()}},
        'other order and meta': {'meta': {'x': 1}, 'state_dict': dict(
            reversed(list(w.items())))},
    }
    for name, payload in variants.items():
        path = str(tmp_path / f'{name}.pth')
        torch.save(payload, path)
        assert file_sha256(path) != file_sha256(ckpt)
        c.check_matches(checkpoint=path)
        c.check_matches(checkpoint=torch.load(path))  # a loaded dict
    c.check_matches(state_dict_sha256=state_dict_sha256(w))


def test_other_weights_are_refused_naming_both(tmp_path, ckpt):
    c = _calibration(ckpt)
    other = str(tmp_path / 'other.pth')
    torch.save({'state_dict': _weights(seed=1)}, other)
    with pytest.raises(CalibrationMismatchError) as info:
        c.check_matches(checkpoint=other)
    msg = str(info.value)
    assert ckpt in msg and other in msg and 'calibrate_ood' in msg
    # a damaged checkpoint is named as such, not as a mismatch
    with open(other, 'wb') as f:
        f.write(b'garbage')
    with pytest.raises(DamagedFileError, match='other.pth'):
        c.check_matches(checkpoint=other)
    with pytest.raises(InvalidValueError, match='not the file hash'):
        c.check_matches(checkpoint_sha256=file_sha256(ckpt))


def _schema_1(ckpt):
    """A file as mmseg_ood 0.2.0 wrote it: bound to the file's bytes."""
    return {
        'format': 'mmseg_ood.calibration', 'version': 1,
        'package_version': '0.2.0', 'created': '2026-01-01T00:00:00+00:00',
        'scorer': {'name': 'energy', 'config': {'type': 'energy'},
                   'state': None},
        'threshold': -3.5, 'decision': 'score >= threshold',
        'method': {'rule': 'id_fpr', 'target': 0.01, 'dataset': 'val',
                   'description': ''},
        'achieved': {}, 'data': {},
        'model': {'config': 'street.py', 'checkpoint': ckpt,
                  'checkpoint_sha256': file_sha256(ckpt), 'num_classes': 6,
                  'classes': CLASSES},
        'ood_label': None}


def test_schema_1_files_are_read_and_bound_to_the_file(tmp_path, ckpt):
    path = tmp_path / 'old.json'
    path.write_text(json.dumps(_schema_1(ckpt)))
    c = OODCalibration.load(str(path))
    assert c.schema_version == 1 and c.state_dict_sha256 is None
    c.check_matches(checkpoint=ckpt, scorer='energy')
    resaved = str(tmp_path / 'resaved.pth')
    torch.save(torch.load(ckpt), resaved)
    with pytest.raises(CalibrationMismatchError,
                       match='schema version 1') as info:
        c.check_matches(checkpoint=resaved)
    assert 'old.json' in str(info.value)
    with pytest.raises(CalibrationMismatchError, match='no file was given'):
        c.check_matches(checkpoint=torch.load(ckpt))
    # written again, it is schema 2 with the file binding it had
    c.save(str(tmp_path / 'new.json'))
    d = json.load(open(tmp_path / 'new.json'))
    assert d['schema_version'] == 2
    assert d['model']['checkpoint_sha256'] == file_sha256(ckpt)
    OODCalibration.load(str(tmp_path / 'new.json')).check_matches(
        checkpoint=ckpt)


def _valid(ckpt):
    return _calibration(ckpt).to_dict()


def _set(d, dotted, value):
    keys = dotted.split('.')
    for k in keys[:-1]:
        d = d[k]
    if value is _DELETE:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


_DELETE = object()


@pytest.mark.parametrize('field, value, message', [
    ('scorer', [], "'scorer' must be an object, got list"),
    ('scorer.config', 'energy', "'config' must be an object, got str"),
    ('scorer.config.type', 3, "'type' must be a string"),
    ('scorer.name', _DELETE, "'name' is missing"),
    ('scorer.state', 'x', "'state' must be an object or null"),
    ('threshold', '1.0', "'threshold' must be a number, got str"),
    ('threshold', None, "'threshold' must be a number, got NoneType"),
    ('threshold', True, "'threshold' must be a number, got bool"),
    ('threshold', _DELETE, "'threshold' is missing"),
    ('method', 'id_fpr', "'method' must be an object"),
    ('method.rule', 'fpr', "method.rule must be one of"),
    ('method.target', '0.01', "'target' must be a number or null"),
    ('method.target', 1.5, 'method.target must be a rate in'),
    ('method.dataset', 5, "'dataset' must be a string"),
    ('model', [], "'model' must be an object, got list"),
    ('model.classes', [1, 2], r'model.classes\[0\] must be a string'),
    ('model.classes', 'road', "'classes' must be a list or null"),
    ('model.num_classes', '6', "'num_classes' must be an int or null"),
    ('model.state_dict_sha256', 'abc', 'state_dict_sha256 must be a 64'),
    ('model.state_dict_sha256', _DELETE, "'state_dict_sha256' is missing"),
    ('model.definition', {'backbone': 3}, r"definition\['backbone'\]"),
    ('model.definition', [], "'definition' must be an object or null"),
    ('ood_label', 300, 'ood_label must be null or an int in'),
    ('ood_label', 'x', "'ood_label' must be an int or null"),
    ('achieved', [], "'achieved' must be an object"),
    ('created', 5, "'created' must be a string or null"),
    ('schema_version', 3, 'newer than this mmseg_ood reads'),
    ('schema_version', '2', 'schema_version must be an int'),
    ('format', 'mmseg_ood.meta_classifier', 'not an mmseg_ood calibration'),
    ('format', _DELETE, 'not an mmseg_ood calibration'),
    ('decision', 'score > threshold', 'decision'),
    ('fit_sha256', _DELETE, "'fit_sha256' is missing"),
    ('fit_sha256', 7, "'fit_sha256' must be a string"),
])
def test_every_field_is_checked(tmp_path, ckpt, field, value, message):
    d = _valid(ckpt)
    _set(d, field, value)
    path = tmp_path / 'c.json'
    path.write_text(json.dumps(d))
    with pytest.raises(DamagedFileError, match=message) as info:
        OODCalibration.load(str(path))
    assert str(path) in str(info.value)


@pytest.mark.parametrize('text, message', [
    ('[1, 2]', 'expected a JSON object, got list'),
    ('"calibration"', 'expected a JSON object, got str'),
    ('', 'not valid JSON'),
    ('{"format": "mmseg_ood.calibration", "sch', 'not valid JSON'),
    ('[' * 100000 + ']' * 100000, 'nested too deeply'),
])
def test_files_that_are_not_calibrations(tmp_path, text, message):
    path = tmp_path / 'c.json'
    path.write_text(text)
    with pytest.raises(DamagedFileError, match=message):
        OODCalibration.load(str(path))


def test_non_utf8_missing_and_folder(tmp_path, ckpt):
    path = tmp_path / 'c.json'
    path.write_bytes(json.dumps(_valid(ckpt)).encode('utf-16'))
    with pytest.raises(DamagedFileError, match='not UTF-8'):
        OODCalibration.load(str(path))
    with pytest.raises(MissingInputError, match='calibrate_ood'):
        OODCalibration.load(str(tmp_path / 'none.json'))
    empty = tmp_path / 'empty_dir'
    empty.mkdir()
    with pytest.raises(MissingInputError, match='calibration.json'):
        OODCalibration.load(str(empty))


@pytest.mark.parametrize('text', ['Infinity', '-Infinity', 'NaN', '1e999'])
def test_a_threshold_that_is_not_finite(tmp_path, ckpt, text):
    d = json.dumps(_valid(ckpt)).replace('"threshold": -3.5',
                                         f'"threshold": {text}')
    path = tmp_path / 'c.json'
    path.write_text(d)
    with pytest.raises(DamagedFileError, match="'threshold' must be a finite"):
        OODCalibration.load(str(path))


def test_an_older_version_without_schema_version(tmp_path, ckpt):
    d = _schema_1(ckpt)
    d['version'] = 7
    path = tmp_path / 'c.json'
    path.write_text(json.dumps(d))
    with pytest.raises(DamagedFileError, match='format version 7'):
        OODCalibration.load(str(path))
    del d['version']
    path.write_text(json.dumps(d))
    with pytest.raises(DamagedFileError, match="'version' is missing"):
        OODCalibration.load(str(path))


@pytest.mark.parametrize('edit', ['both', 'name', 'type', 'threshold',
                                  'state', 'config'])
def test_an_edited_scorer_or_threshold_is_refused(tmp_path, ckpt, edit):
    d = _calibration(ckpt, scorer_name='sml', scorer_config={
        'type': 'sml'}, scorer_state={'count': [1.0], 'mean': [0.0],
                                      'm2': [1.0]}).to_dict()
    if edit in ('both', 'name'):
        d['scorer']['name'] = 'msp'
    if edit in ('both', 'type'):
        d['scorer']['config']['type'] = 'msp'
    if edit == 'threshold':
        d['threshold'] = -3.0
    if edit == 'state':
        d['scorer']['state']['mean'] = [0.5]
    if edit == 'config':
        d['scorer']['config']['min_std'] = 1.0
    path = tmp_path / 'c.json'
    path.write_text(json.dumps(d))
    with pytest.raises(CalibrationMismatchError) as info:
        OODCalibration.load(str(path))
    msg = str(info.value)
    assert str(path) in msg
    if edit in ('name', 'type'):
        assert 'scorer.name' in msg and 'scorer.config.type' in msg
    else:
        assert 'fit_sha256' in msg


def test_an_unknown_scorer_in_the_file_is_named(tmp_path, ckpt):
    c = _calibration(ckpt, scorer_name='no_such',
                     scorer_config={'type': 'no_such'})
    path = c.save(str(tmp_path / 'c.json'))
    back = OODCalibration.load(path)
    with pytest.raises(DamagedFileError, match="c.json: scorer.config: "
                       "unknown scorer 'no_such'"):
        back.build_scorer()
    bad_state = _calibration(ckpt, scorer_name='sml',
                             scorer_config={'type': 'sml'},
                             scorer_state={'count': [1.0]})
    path = bad_state.save(str(tmp_path / 's.json'))
    with pytest.raises(DamagedFileError, match='scorer.state does not fit'):
        OODCalibration.load(path).build_scorer()


def test_constructor_refuses_a_calibration_bound_to_nothing():
    with pytest.raises(InvalidValueError, match='state_dict_sha256'):
        OODCalibration(scorer_name='energy', scorer_config={'type': 'energy'},
                       threshold=0.0, rule='id_fpr', target=0.01,
                       dataset='val')
    with pytest.raises(InvalidValueError, match='64-character'):
        OODCalibration(scorer_name='energy', scorer_config={'type': 'energy'},
                       threshold=0.0, rule='id_fpr', target=0.01,
                       dataset='val', state_dict_sha256='xyz')


# classes and model definition ---------------------------------------------
def test_another_class_count_or_names(ckpt):
    c = _calibration(ckpt)
    c.check_classes(CLASSES, 'm')
    c.check_classes([], 'm')  # a model without names: nothing to compare
    with pytest.raises(CalibrationMismatchError, match="class 5 'car', not "
                       "'truck'"):
        c.check_matches(classes=CLASSES[:5] + ['truck'], config_name='m.py')
    with pytest.raises(CalibrationMismatchError, match='6 classes, not 7'):
        c.check_classes(CLASSES + ['x'], 'm')
    with pytest.raises(CalibrationMismatchError, match='with 6 classes'):
        c.check_num_classes(7, 'm.py')


def test_a_model_of_another_class_count_is_refused(tmp_path, ckpt):
    from mmseg_ood.apis import init_model
    from mmseg_ood.models import OODSegmentor
    model = init_model(STREET_CONFIG)
    seven = _calibration(ckpt, model=dict(num_classes=7))
    path = seven.save(str(tmp_path / 'seven.json'))
    with pytest.raises(CalibrationMismatchError, match='7 classes'):
        OODSegmentor.wrap(model, path)


def test_model_definition_is_what_inference_runs(street_model_cfg):
    base = model_definition(street_model_cfg)
    assert {'backbone', 'decode_head', 'test_cfg', 'data_preprocessor',
            'type'} <= set(base)
    assert 'auxiliary_head' not in base and 'train_cfg' not in base
    same = copy.deepcopy(street_model_cfg)
    same.train_cfg = dict(anything=1)
    same.pretrained = 'open-mmlab://resnet18'
    same.backbone.init_cfg = dict(type='Pretrained', checkpoint='x')
    same.decode_head.loss_decode = dict(type='FocalLoss')
    same.data_preprocessor['size'] = (64, 64)
    same['_scope_'] = 'mmseg'
    if 'norm_cfg' in same.decode_head:
        same.decode_head.norm_cfg = dict(type='SyncBN', requires_grad=True)
    assert model_definition(same) == base
    wrapped = dict(type='OODSegmentor', segmentor=street_model_cfg,
                   calibration='c.json')
    assert model_definition(wrapped) == base
    slide = copy.deepcopy(street_model_cfg)
    slide.test_cfg = dict(mode='slide', crop_size=(64, 64), stride=(48, 48))
    other = model_definition(slide)
    assert [k for k in base if base[k] != other[k]] == ['test_cfg']
    with pytest.raises(Exception, match='must be a model config'):
        model_definition(3)


def test_another_model_definition_is_refused_naming_sections(
        ckpt, street_model_cfg):
    c = _calibration(ckpt, model=dict(
        config='street.py', num_classes=6,
        definition=model_definition(street_model_cfg)))
    c.check_matches(model_config=street_model_cfg)
    other = copy.deepcopy(street_model_cfg)
    other.test_cfg = dict(mode='slide', crop_size=(64, 64), stride=(48, 48))
    other.data_preprocessor['std'] = [1.0, 1.0, 1.0]
    with pytest.raises(CalibrationMismatchError) as info:
        c.check_matches(model_config=other, config_name='slide.py')
    msg = str(info.value)
    assert 'data_preprocessor, test_cfg' in msg
    assert 'street.py' in msg and 'slide.py' in msg
    # a calibration without a definition (older files) is not refused
    _calibration(ckpt).check_matches(model_config=other)


# writing ------------------------------------------------------------------
@pytest.mark.parametrize('link', ['same', 'symlink', 'hardlink'])
def test_save_never_replaces_an_input(tmp_path, ckpt, link):
    before = open(ckpt, 'rb').read()
    out = ckpt
    if link != 'same':
        out = str(tmp_path / 'calibration.json')
        (os.symlink if link == 'symlink' else os.link)(ckpt, out)
    with pytest.raises(OutputPathError, match='is the input'):
        _calibration(ckpt).save(out, inputs=[ckpt], what='--out')
    assert open(ckpt, 'rb').read() == before
    assert _no_temp_files(tmp_path)


def test_save_refuses_a_folder_or_a_missing_folder(tmp_path, ckpt):
    with pytest.raises(OutputPathError, match='is a folder'):
        _calibration(ckpt).save(str(tmp_path))
    with pytest.raises(OutputPathError, match='does not exist'):
        _calibration(ckpt).save(str(tmp_path / 'no' / 'c.json'))


def test_a_failed_save_keeps_the_previous_file(tmp_path, ckpt, monkeypatch):
    path = _calibration(ckpt).save(str(tmp_path / 'c.json'))
    before = open(path).read()
    import mmseg_ood.utils.files as files

    def full_disk(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(files.os, 'fsync', full_disk)
    with pytest.raises(OSError, match='No space'):
        _calibration(ckpt, threshold=-1.0).save(path)
    monkeypatch.undo()
    assert open(path).read() == before
    assert OODCalibration.load(path).threshold == -3.5
    assert _no_temp_files(tmp_path)


# tools/calibrate_ood.py ---------------------------------------------------
def _run(tool, argv, capsys):
    import importlib
    main = importlib.import_module(f'mmseg_ood.tools.{tool}').main
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f'{tool}: error: '), err
    assert 'Traceback' not in err
    return err


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if calibrate_ood starts its evaluation session."""
    import mmseg_ood.apis.calibrate as calibrate

    def started(*args, **kwargs):
        raise AssertionError('the session started before the refusal')

    monkeypatch.setattr(calibrate, 'EvaluationSession', started)


@pytest.mark.parametrize('link', ['checkpoint', 'symlink', 'hardlink',
                                  'config', 'folder', 'missing folder'])
def test_calibrate_out_refused_before_any_work(tmp_path, ckpt, capsys,
                                               no_work, link):
    config = str(tmp_path / 'config.py')
    with open(config, 'w') as f:
        f.write(f'_base_ = [{STREET_CONFIG!r}]\n')
    out = {'checkpoint': ckpt, 'config': config,
           'folder': str(tmp_path),
           'missing folder': str(tmp_path / 'no' / 'c.json')}.get(
               link, str(tmp_path / 'calibration.json'))
    if link in ('symlink', 'hardlink'):
        (os.symlink if link == 'symlink' else os.link)(ckpt, out)
    before = {p: open(p, 'rb').read() for p in (ckpt, config)}
    err = _run('calibrate_ood', [config, ckpt, '--id-fpr', '0.01', '--out',
                                 out, '--work-dir', str(tmp_path / 'w')],
               capsys)
    assert '--out' in err
    assert {p: open(p, 'rb').read() for p in before} == before
    assert _no_temp_files(tmp_path)


@pytest.mark.parametrize('content', [b'', b'text', b'PK\x03\x04trunc'])
def test_calibrate_damaged_checkpoint_before_any_work(tmp_path, capsys,
                                                      no_work, content):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(content)
    err = _run('calibrate_ood', [STREET_CONFIG, str(bad), '--id-fpr', '0.01',
                                 '--work-dir', str(tmp_path / 'w')], capsys)
    assert str(bad) in err and 'not a checkpoint' in err
    err = _run('calibrate_ood', [STREET_CONFIG, str(tmp_path / 'none.pth'),
                                 '--id-fpr', '0.01'], capsys)
    assert 'none.pth' in err and 'not found' in err


@pytest.mark.parametrize('flags, message', [
    (['--id-fpr', '0.01', '--ood-label', '300'],
     '--ood-label must be None or an int in [0, 255], got 300'),
    (['--tpr', '0.9'], 'needs a labelled OOD set'),
    (['--id-fpr', '0.01', '--scorer', 'no_such'], "unknown scorer 'no_such'"),
    (['--id-fpr', '0.01', '--scorer-options', 'type=msp'],
     'must not set `type`'),
])
def test_calibrate_flag_values_are_one_line(tmp_path, ckpt, capsys, no_work,
                                            flags, message):
    err = _run('calibrate_ood', [STREET_CONFIG, ckpt, *flags], capsys)
    assert message in err


@pytest.mark.parametrize('flags', [['--id-fpr', 'nan'],
                                   ['--id-fpr', '0.01', '--level', '1'],
                                   ['--id-fpr', '0.01', '--ood-label', 'x']])
def test_calibrate_flag_types_are_argparse_errors(ckpt, capsys, no_work,
                                                  flags):
    from mmseg_ood.tools.calibrate_ood import main
    with pytest.raises(SystemExit) as info:
        main([STREET_CONFIG, ckpt, *flags])
    err = capsys.readouterr().err
    assert info.value.code == 2 and 'Traceback' not in err
    assert 'error: argument' in err.splitlines()[-1]


def test_meta_classify_thresholds_nan_is_one_line(tmp_path, ckpt, capsys):
    err = _run('meta_classify', [STREET_CONFIG, ckpt, '--thresholds', 'nan',
                                 '--work-dir', str(tmp_path / 'w')], capsys)
    assert 'nan' in err.lower()
