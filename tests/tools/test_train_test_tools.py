"""tools/train.py and tools/test.py, end to end on the synthetic benchmark.

The command line itself runs in a fresh interpreter (``run_tool``); the
other cases call what the tools call (``mmseg_ood.apis``) in-process, which
saves the interpreter start-up (about 4 s each, mostly imports)."""
import glob
import json
import os.path as osp

import pytest

from conftest import QUICK_CFG, QUICK_OPTIONS, STREET_CONFIG, run_tool


def _checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def test_train_writes_a_checkpoint_and_validates(trained_work_dir):
    ckpt = _checkpoint(trained_work_dir)
    assert osp.basename(ckpt) == 'iter_2.pth' and osp.isfile(ckpt)
    logs = glob.glob(osp.join(trained_work_dir, '*', 'vis_data',
                              'scalars.json'))
    assert logs, 'no training log written'
    records = [json.loads(line) for line in open(logs[0])]
    assert any('loss' in r for r in records)
    assert any('mIoU' in r for r in records)  # validation ran at iter 2


def _check_test_outputs(work, out):
    results = glob.glob(osp.join(work, '*', '*.json'))
    assert results, 'no metrics written'
    metrics = json.load(open(results[0]))
    assert 0.0 <= metrics['mIoU'] <= 100.0
    preds = sorted(glob.glob(osp.join(out, '*.png')))
    assert len(preds) == 2  # one prediction per val image


def test_test_tool_evaluates_the_checkpoint(tmp_path, synthetic_root,
                                            trained_work_dir):
    work, out = str(tmp_path / 'test'), str(tmp_path / 'pred')
    run_tool('test.py', STREET_CONFIG, _checkpoint(trained_work_dir),
             '--work-dir', work, '--out', out, '--cfg-options',
             *QUICK_OPTIONS, env={'MMSEG_OOD_DATA': synthetic_root})
    _check_test_outputs(work, out)


def test_tta_evaluates_the_checkpoint(tmp_path, synthetic_root,
                                      trained_work_dir, monkeypatch):
    from mmseg_ood.apis import test
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    work, out = str(tmp_path / 'test'), str(tmp_path / 'pred')
    metrics = test(STREET_CONFIG, _checkpoint(trained_work_dir), work,
                   out=out, tta=True, cfg_options=dict(QUICK_CFG))
    assert 0.0 <= metrics['mIoU'] <= 100.0
    _check_test_outputs(work, out)


def test_test_tool_refuses_a_checkpoint_that_does_not_fit(
        tmp_path, synthetic_root, trained_work_dir, monkeypatch):
    """mmseg's tools/test.py logs the size mismatch and reports a wrong
    mIoU with exit code 0; ours stops, naming both files and the key."""
    from mmseg_ood.apis import test
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    ckpt = _checkpoint(trained_work_dir)
    with pytest.raises(ValueError) as info:
        test(STREET_CONFIG, ckpt, str(tmp_path), cfg_options=dict(
            QUICK_CFG, **{'model.decode_head.num_classes': 8}))
    err = str(info.value)
    assert ckpt in err and STREET_CONFIG in err
    assert 'decode_head.conv_seg.weight' in err
    assert not glob.glob(str(tmp_path / '*' / '*.json'))  # no metrics


def test_test_tool_refuses_nan_logits(tmp_path, synthetic_root,
                                      trained_work_dir, monkeypatch):
    import torch
    from mmseg_ood.utils import load_checkpoint_file
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    ckpt = load_checkpoint_file(_checkpoint(trained_work_dir))
    state = {k: (v.fill_(float('nan')) if v.is_floating_point() else v)
             for k, v in ckpt['state_dict'].items()}
    nan = str(tmp_path / 'nan.pth')
    torch.save(dict(state_dict=state), nan)
    from mmseg_ood.apis import test
    with pytest.raises(ValueError, match=r'non-finite \(NaN/Inf\) logits.*'
                       r'for image .*\.png'):
        test(STREET_CONFIG, nan, str(tmp_path / 'w'),
             cfg_options=dict(QUICK_CFG))


def test_resume_continues_from_the_checkpoint(tmp_path, synthetic_root,
                                              trained_work_dir, monkeypatch):
    import shutil

    from mmseg_ood.apis import train
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    work = str(tmp_path / 'resume')
    shutil.copytree(trained_work_dir, work)
    before = set(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json')))
    train(STREET_CONFIG, work, resume=True,
          cfg_options=dict(QUICK_CFG, **{'train_cfg.max_iters': 3}))
    assert osp.basename(_checkpoint(work)) == 'iter_3.pth'
    # resumed at iteration 2: only the third iteration was trained now
    (log, ) = set(glob.glob(osp.join(work, '*', 'vis_data',
                                     'scalars.json'))) - before
    iters = {json.loads(line)['iter'] for line in open(log)
             if 'loss' in json.loads(line)}
    assert iters == {3}


def test_show_dir_writes_painted_images(tmp_path, synthetic_root,
                                        trained_work_dir, monkeypatch):
    """A relative --show-dir lands under the work dir (in-process)."""
    from mmseg_ood.apis import test
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    monkeypatch.chdir(tmp_path)  # not where the images must go
    work = str(tmp_path / 'show')
    test(STREET_CONFIG, _checkpoint(trained_work_dir), work,
         show_dir='painted',
         cfg_options=dict(QUICK_CFG,
                          **{'default_hooks.visualization.interval': 1}))
    assert not (tmp_path / 'painted').exists()
    assert len(glob.glob(osp.join(work, 'painted', '**', '*.png'),
                         recursive=True)) == 2


def test_missing_data_root_names_path_and_layout(tmp_path, monkeypatch):
    from mmseg_ood.apis import train
    monkeypatch.setenv('MMSEG_OOD_DATA', str(tmp_path / 'nowhere'))
    with pytest.raises(FileNotFoundError) as info:
        train(STREET_CONFIG, str(tmp_path / 'w'),
              cfg_options=dict(QUICK_CFG))
    err = str(info.value)
    assert str(tmp_path / 'nowhere' / 'street' / 'images' / 'train') in err
    assert 'annotations/{train,val}/NNNN.png' in err
    assert 'tools/make_synthetic.py' in err


def test_unknown_type_names_it_and_the_choices(tmp_path, synthetic_root,
                                               monkeypatch):
    from mmseg_ood.apis import train
    from mmseg_ood.utils import UnknownTypeError
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    with pytest.raises(UnknownTypeError) as info:
        train(STREET_CONFIG, str(tmp_path / 'w'), cfg_options=dict(
            QUICK_CFG,
            **{'model.decode_head.type': 'DepthwiseSeparableASPPHeed'}))
    err = str(info.value)
    assert "'DepthwiseSeparableASPPHeed'" in err
    assert 'mmseg::model registry' in err
    assert "Did you mean 'DepthwiseSeparableASPPHead'" in err
    assert 'FCNHead' in err and 'EncoderDecoder' in err  # the choices


def test_missing_config_is_named(tmp_path):
    from mmseg_ood.apis import train
    with pytest.raises(FileNotFoundError,
                       match=f'config file not found: {tmp_path}/nope.py'):
        train(str(tmp_path / 'nope.py'))


def test_runners_in_one_process_keep_their_own_logs(tmp_path):
    """mmengine keys loggers and visualizers by name; mmseg's configs name
    every visualizer 'visualizer'. Two Runners built in one process (as
    ``train`` then ``test`` from a notebook) must not share them."""
    from mmseg_ood.engine.runner import build_runner
    from mmseg_ood.utils import load_config
    runners = [build_runner(load_config(STREET_CONFIG, dict(QUICK_CFG),
                                        str(tmp_path / name)))
               for name in ('a', 'b')]
    a, b = (r.visualizer for r in runners)
    assert a is not b
    assert runners[0].experiment_name != runners[1].experiment_name
    for r, name in zip(runners, 'ab'):
        assert r.visualizer._vis_backends['LocalVisBackend']._save_dir \
            .startswith(str(tmp_path / name))
