"""mmseg's conventions and a new user's first minutes: ``mmseg::`` configs
wherever a config goes, named errors for a missing or broken config, a data
root whose environment variable is not set, a missing checkpoint, and plain
numbers in the Runner's JSON log."""
import glob
import json
import math
import os
import os.path as osp

import pytest

from conftest import QUICK_CFG, REPO, STREET_CONFIG, package_tool
from mmseg_ood.errors import (DamagedFileError, MissingExtraError,
                              MissingInputError)

ZOO = ('mmseg::deeplabv3plus/'
       'deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py')


pytestmark = pytest.mark.usefixtures('isolated_loggers')


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def _tool_error(tool, argv, capsys):
    """Run ``tools/<tool>.py``'s ``main`` in-process; assert exit status 2
    and one line on stderr, and return that line."""
    import importlib
    main = importlib.import_module(package_tool(tool)).main
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'Traceback' not in err, err
    assert err.startswith(f'{tool}: error: ')
    return err


# --- configs: mmseg:: and named errors ---------------------------------------
def test_a_model_zoo_config_resolves_and_loads():
    import mmseg

    from mmseg_ood.utils.config import load_config, resolve_config_path
    path = resolve_config_path(ZOO)
    assert osp.samefile(path, osp.join(
        osp.dirname(mmseg.__file__), '.mim', 'configs', 'deeplabv3plus',
        'deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py'))
    cfg = load_config(ZOO)
    assert cfg.model.decode_head.num_classes == 19
    assert cfg.work_dir == osp.join(
        './work_dirs', 'deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024')
    # mmseg_ood:: keeps working
    rel = osp.relpath(STREET_CONFIG, osp.join(REPO, 'configs'))
    assert osp.samefile(resolve_config_path(f'mmseg_ood::{rel}'),
                        STREET_CONFIG)


@pytest.mark.parametrize('spec, named', [
    ('mmseg::deeplabv3plus/nope.py', "no deeplabv3plus/nope.py in the "
     'configs mmseg ships'),
    ('mmseg_ood::synthetic/nope.py', "'mmseg_ood::synthetic/nope.py' not "
     'found'),
    ('nosuchpackage::a/b.py', "no installed package 'nosuchpackage'"),
    ('missing/config.py', 'config file not found: missing/config.py'),
])
def test_a_missing_config_is_named(spec, named):
    from mmseg_ood.utils.config import load_config, resolve_config_path
    for call in (resolve_config_path, load_config):
        with pytest.raises(MissingInputError) as info:
            call(spec)
        assert named in str(info.value)


def test_a_folder_given_as_a_config(tmp_path):
    from mmseg_ood.utils.config import resolve_config_path
    with pytest.raises(MissingInputError, match='is a folder'):
        resolve_config_path(str(tmp_path))


def test_the_package_of_an_extra_not_installed_names_the_extra(monkeypatch):
    """``mmdet::`` without mmdet: the import is blocked in this
    environment."""
    import importlib.util

    from mmseg_ood.utils.config import resolve_config_path
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'mmdet'
                        else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"mmseg_ood\[mask2former\]"):
        resolve_config_path('mmdet::mask2former/x.py')


def test_a_broken_config_is_named(tmp_path, monkeypatch):
    from mmseg_ood.utils.config import load_config
    bad = tmp_path / 'syntax.py'
    bad.write_text('model = dict(type=\n')
    with pytest.raises(DamagedFileError, match='syntax.py: not a valid'):
        load_config(str(bad))
    latin = tmp_path / 'latin.py'
    latin.write_bytes(b"# caf\xe9\nmodel = dict(type='X')\n")
    with pytest.raises(DamagedFileError, match='latin.py: not UTF-8'):
        load_config(str(latin))
    base = tmp_path / 'base.py'
    base.write_text("_base_ = ['./gone.py']\n")
    with pytest.raises(MissingInputError, match='gone.py'):
        load_config(str(base))
    env = tmp_path / 'env.py'
    env.write_text("data_root = '{{$MMSEG_OOD_NO_SUCH_VAR:}}'\n")
    monkeypatch.delenv('MMSEG_OOD_NO_SUCH_VAR', raising=False)
    with pytest.raises(MissingInputError,
                       match='MMSEG_OOD_NO_SUCH_VAR, which is not set'):
        load_config(str(env))


def test_ood_test_refuses_a_missing_zoo_config_in_one_line(
        tmp_path, synthetic_root, trained_work_dir, monkeypatch, capsys):
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    err = _tool_error('ood_test', ['mmseg::deeplabv3plus/nope.py',
                                   _ckpt(trained_work_dir), '--work-dir',
                                   str(tmp_path / 'w')], capsys)
    assert "config 'mmseg::deeplabv3plus/nope.py' not found" in err
    assert not (tmp_path / 'w').exists()


@pytest.fixture(scope='module')
def zoo_checkpoint(tmp_path_factory):
    """A randomly initialised model-zoo DeepLabV3+ R18 (Cityscapes, 19
    classes), saved as a checkpoint."""
    import torch
    from mmengine.registry import init_default_scope

    import mmseg_ood  # noqa: F401
    from mmseg.registry import MODELS
    from mmseg_ood.utils.config import load_config, sync_bn_to_bn
    init_default_scope('mmseg')
    model = load_config(ZOO).model
    sync_bn_to_bn(model)
    model.pretrained = None
    model.backbone.init_cfg = None
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('zoo') / 'zoo.pth')
    torch.save({'state_dict': MODELS.build(model).state_dict(), 'meta': {}},
               path)
    return path


def test_ood_test_runs_a_model_zoo_config(tmp_path, zoo_checkpoint,
                                          synthetic_root):
    """``tools/ood_test.py mmseg::...`` end to end (small inputs)."""
    from conftest import run_tool
    work = tmp_path / 'w'
    proc = run_tool(
        'ood_test.py', ZOO, zoo_checkpoint, '--work-dir', str(work),
        '--datasets', 'synthetic_ood', '--scorers', 'msp', '--no-id-eval',
        '--cfg-options', 'test_dataloader.dataset.pipeline.1.scale=(128,64)',
        'model.data_preprocessor.size=None', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        env={'MMSEG_OOD_DATA': synthetic_root})
    res = json.load(open(work / 'results.json'))
    assert res['complete'] is True
    assert set(res['results']['synthetic_ood']) == {'msp'}
    assert 0 <= res['results']['synthetic_ood']['msp']['auroc'] <= 1
    assert 'Warning' not in proc.stderr


# --- data roots from environment variables -----------------------------------
@pytest.fixture
def no_default_data(tmp_path, monkeypatch):
    """A working directory without ``data/``: the presets' defaults do not
    exist."""
    monkeypatch.chdir(tmp_path)
    for var in ('SMIYC_ROOT', 'FS_STATIC_ROOT', 'MMSEG_OOD_DATA'):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_an_unset_data_root_variable_is_named(no_default_data):
    """By ``load_dataset_preset(check_data_root=True)`` and by
    ``check_dataset_files``, which every tool calls before it builds a
    model."""
    from mmseg_ood.datasets import check_dataset_files, load_dataset_preset
    with pytest.raises(MissingInputError) as info:
        load_dataset_preset('road_anomaly21', check_data_root=True)
    msg = str(info.value)
    for part in ("dataset 'road_anomaly21'", 'road_anomaly21.py',
                 'SMIYC_ROOT is not set', 'dataset_AnomalyTrack',
                 'export SMIYC_ROOT=/path/to/smiyc'):
        assert part in msg, msg
    assert isinstance(info.value, FileNotFoundError)
    preset = load_dataset_preset('road_anomaly21')  # fields only
    with pytest.raises(MissingInputError) as info:
        check_dataset_files(preset.dataset, 'road_anomaly21')
    assert str(info.value) == msg


@pytest.mark.parametrize('value, problem', [
    ('nowhere', 'SMIYC_ROOT={} does not exist'),
    ('a_file', 'SMIYC_ROOT={} is not a folder'),
    ('empty_dir', "the data root '{}/dataset_AnomalyTrack' does not exist"),
])
def test_a_data_root_variable_set_to_a_wrong_folder(value, problem,
                                                    no_default_data,
                                                    monkeypatch):
    from mmseg_ood.datasets import load_dataset_preset
    (no_default_data / 'a_file').write_text('x')
    (no_default_data / 'empty_dir').mkdir()
    path = str(no_default_data / value)
    monkeypatch.setenv('SMIYC_ROOT', path)
    with pytest.raises(MissingInputError) as info:
        load_dataset_preset('road_anomaly21', check_data_root=True)
    assert problem.format(path) in str(info.value)
    assert 'set SMIYC_ROOT to the folder that holds dataset_AnomalyTrack/' \
        in str(info.value)


def test_an_empty_data_root_variable_is_named(no_default_data, monkeypatch):
    from mmseg_ood.datasets import load_dataset_preset
    monkeypatch.setenv('SMIYC_ROOT', '')
    with pytest.raises(MissingInputError, match='SMIYC_ROOT is empty'):
        load_dataset_preset('road_obstacle21')  # mmengine cannot load it


def test_a_data_root_that_exists_loads(no_default_data, monkeypatch):
    from mmseg_ood.datasets import load_dataset_preset
    (no_default_data / 'smiyc' / 'dataset_ObstacleTrack').mkdir(parents=True)
    monkeypatch.setenv('SMIYC_ROOT', str(no_default_data / 'smiyc'))
    p = load_dataset_preset('road_obstacle21', check_data_root=True)
    assert p.dataset['data_root'] == str(
        no_default_data / 'smiyc' / 'dataset_ObstacleTrack')
    # the variable unset but the default folder there: mmengine's default
    monkeypatch.delenv('SMIYC_ROOT')
    (no_default_data / 'data' / 'smiyc' /
     'dataset_ObstacleTrack').mkdir(parents=True)
    assert load_dataset_preset('road_obstacle21', check_data_root=True
                               ).dataset['data_root'] == \
        'data/smiyc/dataset_ObstacleTrack'
    # reading the fields only (the default)
    monkeypatch.setenv('FS_STATIC_ROOT', str(no_default_data / 'nowhere'))
    assert load_dataset_preset('fs_static').name == 'fs_static'


def test_a_preset_without_a_variable_is_left_to_the_file_check(tmp_path):
    from mmseg_ood.datasets import load_dataset_preset
    own = tmp_path / 'mine.py'
    own.write_text("ood_dataset = dict(type='SyntheticOODDataset', "
                   "data_root='not/here')\n")
    p = load_dataset_preset(str(own), check_data_root=True)
    assert p.dataset['data_root'] == 'not/here'
    from mmseg_ood.datasets import check_dataset_files
    with pytest.raises(MissingInputError,
                       match="mine: data_root 'not/here' is not a directory"):
        check_dataset_files(p.dataset, 'mine')


def test_ood_test_names_the_variable_before_building_a_model(
        no_default_data, trained_work_dir, monkeypatch, capsys):
    """One line naming SMIYC_ROOT, and no model built, no result
    written."""
    import mmseg_ood.engine.evaluation_session as session

    def no_model(*args, **kwargs):
        raise AssertionError('a model was built')

    monkeypatch.setattr(session, 'build_runner', no_model)
    err = _tool_error('ood_test', [
        STREET_CONFIG, _ckpt(trained_work_dir), '--work-dir',
        str(no_default_data / 'w'), '--datasets', 'road_anomaly21'], capsys)
    assert 'SMIYC_ROOT is not set' in err and 'road_anomaly21' in err
    assert not glob.glob(str(no_default_data / 'w' / 'results*'))


# --- a missing checkpoint ----------------------------------------------------
@pytest.mark.parametrize('make, named', [
    (lambda p: None, 'nope.pth'),
    (lambda p: os.makedirs(p), 'nope.pth'),
    (lambda p: open(p, 'wb').close(), 'nope.pth'),
])
def test_ood_test_names_a_missing_or_empty_checkpoint(make, named, tmp_path,
                                                      synthetic_root,
                                                      monkeypatch, capsys):
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    ckpt = str(tmp_path / 'nope.pth')
    make(ckpt)
    err = _tool_error('ood_test', [STREET_CONFIG, ckpt, '--work-dir',
                                   str(tmp_path / 'w'), '--datasets',
                                   'synthetic_ood'], capsys)
    assert named in err
    assert not glob.glob(str(tmp_path / 'w' / 'results*'))


# --- the Runner's JSON log: plain numbers ------------------------------------
def test_the_json_log_holds_every_count(tmp_path, synthetic_root,
                                        trained_work_dir, monkeypatch):
    """A test pass through the Runner (``EvaluationSession``) with
    ``OODMetric``: every value in ``<work_dir>/<timestamp>/<timestamp>.json``
    is a number, the counts included (numpy integers were ``null``)."""
    from mmseg_ood.datasets import load_dataset_preset
    from mmseg_ood.engine import EvaluationSession
    from mmseg_ood.evaluation import OODMetric
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    work = tmp_path / 'w'
    session = EvaluationSession(STREET_CONFIG, _ckpt(trained_work_dir),
                                str(work), cfg_options=dict(QUICK_CFG))
    try:
        result = session.run_pass(
            load_dataset_preset('synthetic_ood').dataset, name='ood',
            scorers=['msp'], metrics=[OODMetric()], progress=False)
    finally:
        session.close()
    counts = {k: v for k, v in result.metrics.items()
              if k.rsplit('/', 1)[-1].startswith('num_')}
    assert counts and all(type(v) is int for v in counts.values()), counts
    assert all(type(v) in (int, float, bool, str, list, dict)
               for v in result.metrics.values())
    (log, ) = glob.glob(str(work / '*' / '*.json'))
    logged = json.load(open(log))
    for key, value in counts.items():
        assert logged[key] == value, key
    for key, value in logged.items():
        assert value is not None, key
        assert isinstance(value, (int, float)), key
        assert not (isinstance(value, float) and math.isinf(value)), key


def test_plain_numbers_converts_nested_numpy_scalars():
    import numpy as np
    import torch

    from mmseg_ood.evaluation.metrics.accumulating_metric import \
        plain_numbers
    arr = np.arange(3)
    out = plain_numbers(dict(a=np.int64(3), b=[np.float32(0.5), np.bool_(1)],
                             c=(np.uint8(7), ), d=arr,
                             e=torch.tensor(2), f=float('nan')))
    assert type(out['a']) is int and out['a'] == 3
    assert type(out['b'][0]) is float and out['b'][1] is True
    assert out['c'] == (7, ) and type(out['c'][0]) is int
    assert out['d'] is arr  # arrays are left as they are
    assert type(out['e']) is int and math.isnan(out['f'])
    # float32 as the number it prints as (mmseg's IoUMetric rounds in
    # float32)
    assert plain_numbers(np.float32(70.83)) == 70.83
    assert math.isnan(plain_numbers(np.float32('nan')))
