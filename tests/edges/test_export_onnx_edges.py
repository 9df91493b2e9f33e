"""``tools/export_onnx.py`` at its edges: every input checked before any
work, ``--out`` never an input, a good ``model.onnx`` never replaced by a
failed, interrupted or unchecked-and-wrong export, checkpoints without
``meta``, and the calibration bound to the weights, classes and model
definition."""
import os
import shutil

import numpy as np
import pytest
import torch

from conftest import STREET_CONFIG

pytest.importorskip('onnxruntime')

from mmseg_ood.formats.threshold_file import (  # noqa: E402
    OODCalibration, model_definition)
from mmseg_ood.utils import state_dict_sha256  # noqa: E402

SHAPE = ['32', '64']


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A random-weight street model saved without ``meta``, a calibration
    bound to its weights (a threshold no score reaches: the check cannot
    flip near it), and a good export of it."""
    from mmengine.config import Config

    from mmseg_ood.apis import init_model
    from mmseg_ood.deploy.onnx_export import export_onnx
    tmp = tmp_path_factory.mktemp('export_edges')
    torch.manual_seed(0)
    sd = init_model(STREET_CONFIG).state_dict()
    ckpt = str(tmp / 'no_meta.pth')
    torch.save({'state_dict': sd}, ckpt)
    calib = OODCalibration(
        scorer_name='energy', scorer_config={'type': 'energy'},
        threshold=1e6, rule='id_fpr', target=0.01, dataset='val',
        state_dict_sha256=state_dict_sha256(sd),
        model=dict(config=STREET_CONFIG, checkpoint=ckpt, num_classes=6,
                   definition=model_definition(
                       Config.fromfile(STREET_CONFIG).model))).save(
                           str(tmp / 'calibration.json'))
    good = str(tmp / 'good.onnx')
    result = export_onnx(STREET_CONFIG, ckpt, calib, good,
                         shape=tuple(map(int, SHAPE)))
    assert result['check'].passed
    return dict(tmp=tmp, ckpt=ckpt, calib=calib, good=good, sd=sd)


@pytest.fixture
def previous(setup, tmp_path):
    """A good model.onnx from an earlier run, where this run writes."""
    out = str(tmp_path / 'model.onnx')
    shutil.copy(setup['good'], out)
    return out


def _bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def _no_temp_files(folder):
    return not [n for n in os.listdir(folder) if '.tmp' in n]


def _run(argv, capsys, code=2):
    from mmseg_ood.tools.export_onnx import main
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == code, err
    assert len(err.splitlines()) == 1, err
    assert 'Traceback' not in err
    return err


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the export builds the model."""
    import mmseg_ood.models.inference as inference

    def built(*args, **kwargs):
        raise AssertionError('the model was built before the refusal')

    monkeypatch.setattr(inference, 'init_model', built)


def _args(setup, out, *extra, ckpt=None, calib=None):
    return [STREET_CONFIG, ckpt or setup['ckpt'], '--calibration',
            calib or setup['calib'], '--out', out, '--shape', *SHAPE,
            *extra]


# --out --------------------------------------------------------------------
@pytest.mark.parametrize('which', ['calibration', 'checkpoint',
                                   'calibration symlink',
                                   'checkpoint hardlink', 'check image'])
def test_out_naming_an_input_is_refused_before_work(setup, tmp_path, capsys,
                                                    no_work, which):
    calib = str(tmp_path / 'calibration.json')
    ckpt = str(tmp_path / 'model.pth')
    image = str(tmp_path / 'img.png')
    shutil.copy(setup['calib'], calib)
    shutil.copy(setup['ckpt'], ckpt)
    import cv2
    cv2.imwrite(image, np.zeros((8, 8, 3), np.uint8))
    out = {'calibration': calib, 'checkpoint': ckpt,
           'check image': image}.get(which, str(tmp_path / 'out.onnx'))
    if which == 'calibration symlink':
        os.symlink(calib, out)
    if which == 'checkpoint hardlink':
        os.link(ckpt, out)
    before = {p: _bytes(p) for p in (calib, ckpt, image)}
    err = _run(_args(setup, out, '--check-image', image, ckpt=ckpt,
                     calib=calib), capsys)
    assert 'export_onnx: error: --out' in err and 'is the input' in err
    assert {p: _bytes(p) for p in before} == before
    assert _no_temp_files(tmp_path)


def test_out_folder_or_missing_folder(setup, tmp_path, capsys, no_work):
    err = _run(_args(setup, str(tmp_path)), capsys)
    assert 'is a folder' in err
    err = _run(_args(setup, str(tmp_path / 'no' / 'm.onnx')), capsys)
    assert 'does not exist' in err


# other inputs, before a good file is replaced -------------------------------
@pytest.mark.parametrize('image', ['missing', 'text', 'empty', 'folder',
                                   'truncated png'])
def test_check_image_checked_before_replacing(setup, tmp_path, capsys,
                                              no_work, previous, image):
    import cv2
    path = str(tmp_path / 'img.png')
    if image == 'text':
        with open(path, 'w') as f:
            f.write('not an image')
    elif image == 'empty':
        open(path, 'wb').close()
    elif image == 'folder':
        os.mkdir(path)
    elif image == 'truncated png':
        cv2.imwrite(path, np.full((64, 64, 3), 127, np.uint8))
        data = _bytes(path)
        with open(path, 'wb') as f:
            f.write(data[:40])
    before = _bytes(previous)
    err = _run(_args(setup, previous, '--check-image', path), capsys)
    assert '--check-image' in err and 'img.png' in err
    assert _bytes(previous) == before
    assert _no_temp_files(tmp_path)


def test_damaged_or_foreign_inputs_before_any_work(setup, tmp_path, capsys,
                                                   no_work, previous):
    before = _bytes(previous)
    bad = str(tmp_path / 'bad.pth')
    with open(bad, 'wb') as f:
        f.write(_bytes(setup['ckpt'])[:500])
    err = _run(_args(setup, previous, ckpt=bad), capsys)
    assert 'bad.pth' in err and 'not a checkpoint' in err
    other = str(tmp_path / 'other.pth')
    torch.save({k: v + 1 if v.is_floating_point() else v
                for k, v in setup['sd'].items()}, other)
    err = _run(_args(setup, previous, ckpt=other), capsys)
    assert 'was made for the weights' in err and 'other.pth' in err
    edited = str(tmp_path / 'edited.json')
    with open(setup['calib']) as f, open(edited, 'w') as g:
        g.write(f.read().replace('"energy"', '"msp"'))
    err = _run(_args(setup, previous, calib=edited), capsys)
    assert 'fit_sha256' in err and 'edited.json' in err
    notjson = str(tmp_path / 'c.json')
    with open(notjson, 'wb') as f:
        f.write(b'\xff\xfe{')
    err = _run(_args(setup, previous, calib=notjson), capsys)
    assert 'not UTF-8' in err
    err = _run(_args(setup, previous, calib=str(tmp_path / 'none.json')),
               capsys)
    assert 'not found' in err
    assert _bytes(previous) == before


@pytest.mark.parametrize('flags, message', [
    (['--opset', '3'], '--opset must be an ONNX opset'),
    (['--opset', '99'], '--opset must be an ONNX opset'),
])
def test_bad_flag_values(setup, tmp_path, capsys, no_work, previous, flags,
                         message):
    before = _bytes(previous)
    err = _run(_args(setup, previous, *flags), capsys)
    assert message in err
    assert _bytes(previous) == before


def test_bad_shape_and_unknown_flag(setup, capsys, no_work, previous):
    from mmseg_ood.tools.export_onnx import main
    args = _args(setup, previous)
    i = args.index('--shape')
    args[i + 1:i + 3] = ['0', '5']
    err = _run(args, capsys)
    assert '`shape` must be two ints' in err
    # export_onnx runs on the CPU: a --device flag is argparse's error
    with pytest.raises(SystemExit) as info:
        main(_args(setup, previous, '--device', 'cuda:99'))
    assert info.value.code == 2
    assert 'unrecognized arguments: --device' in capsys.readouterr().err


def test_classes_and_definition_are_compared(setup, tmp_path, capsys,
                                             previous):
    before = _bytes(previous)
    named = str(tmp_path / 'named.pth')
    torch.save({'state_dict': setup['sd'], 'meta': {'dataset_meta': {
        'classes': ['a', 'b', 'c', 'd', 'e', 'f']}}}, named)
    calib = OODCalibration.load(setup['calib'])
    calib.model['classes'] = ['a', 'b', 'c', 'd', 'e', 'g']
    path = calib.save(str(tmp_path / 'c.json'))
    err = _run(_args(setup, previous, ckpt=named, calib=path), capsys)
    assert "class 5 'g', not 'f'" in err
    err = _run(_args(setup, previous, '--cfg-options',
                     'model.data_preprocessor.std=[1.0,1.0,1.0]'), capsys)
    assert 'differs in data_preprocessor' in err
    assert _bytes(previous) == before


# failed, interrupted and wrong exports ------------------------------------
def test_a_failing_exporter_keeps_the_previous_file(setup, tmp_path, capsys,
                                                    previous, monkeypatch):
    before = _bytes(previous)

    def broken(module, args, path, **kwargs):
        with open(path, 'wb') as f:
            f.write(b'half a model')
        raise RuntimeError('Exporting the operator aten::foo is not '
                           'supported')

    monkeypatch.setattr(torch.onnx, 'export', broken)
    err = _run(_args(setup, previous, '--no-check'), capsys)
    assert 'aten::foo' in err
    assert _bytes(previous) == before
    assert _no_temp_files(tmp_path)


def test_an_interrupted_export_keeps_the_previous_file(setup, tmp_path,
                                                       capsys, previous,
                                                       monkeypatch):
    before = _bytes(previous)

    def interrupted(module, args, path, **kwargs):
        with open(path, 'wb') as f:
            f.write(b'half')
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, 'export', interrupted)
    err = _run(_args(setup, previous), capsys, code=130)
    assert 'interrupted' in err
    assert _bytes(previous) == before
    assert _no_temp_files(tmp_path)


def test_an_exporter_that_writes_nothing(setup, tmp_path, capsys, previous,
                                         monkeypatch):
    before = _bytes(previous)
    monkeypatch.setattr(torch.onnx, 'export', lambda *a, **k: None)
    err = _run(_args(setup, previous, '--no-check'), capsys)
    assert 'left no data' in err
    assert _bytes(previous) == before
    assert _no_temp_files(tmp_path)


def test_a_failed_check_does_not_replace_the_file(setup, tmp_path, capsys,
                                                  previous, monkeypatch):
    import mmseg_ood.deploy.onnx_export as onnx_export
    before = _bytes(previous)
    real = onnx_export.compare_outputs

    def off_by_one(onnx_outputs, torch_outputs, threshold, tolerance):
        pred, score, mask = onnx_outputs
        return real((pred, score + 1.0, mask), torch_outputs, threshold,
                    tolerance)

    monkeypatch.setattr(onnx_export, 'compare_outputs', off_by_one)
    err = _run(_args(setup, previous), capsys)
    assert 'does not give the outputs' in err and 'FAILED' in err
    assert 'was not written' in err
    assert _bytes(previous) == before
    assert _no_temp_files(tmp_path)


# what works ---------------------------------------------------------------
def test_a_bare_state_dict_and_resaved_weights_export(setup, tmp_path,
                                                      capsys, previous):
    """The calibration was made for the file without meta; a bare state
    dict and a Runner-style copy of the same weights export with it, and
    the new file replaces the previous one whole."""
    import onnxruntime as ort
    bare = str(tmp_path / 'bare.pth')
    torch.save(setup['sd'], bare)
    runner = str(tmp_path / 'runner.pth')
    torch.save({'meta': {'iter': 9}, 'state_dict': {
        'module.' + k: v for k, v in setup['sd'].items()}}, runner)
    image = str(tmp_path / 'tiny.png')
    import cv2
    cv2.imwrite(image, np.full((1, 1, 3), 200, np.uint8))  # a 1x1 image
    from mmseg_ood.tools.export_onnx import main
    for ckpt in (bare, runner):
        os.remove(previous)
        result = main(_args(setup, previous, '--check-image', image,
                            ckpt=ckpt))
        assert result['check'].passed
        sess = ort.InferenceSession(previous,
                                    providers=['CPUExecutionProvider'])
        assert [o.name for o in sess.get_outputs()] == ['pred', 'score',
                                                        'ood_mask']
    assert 'PASSED' in capsys.readouterr().out
    assert _no_temp_files(tmp_path)
