"""tools/train.py and tools/test.py, end to end on the synthetic benchmark."""
import glob
import json
import os.path as osp

import pytest

from conftest import QUICK_OPTIONS, STREET_CONFIG, run_tool


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


@pytest.mark.parametrize('extra', [[], ['--tta']], ids=['plain', 'tta'])
def test_test_tool_evaluates_the_checkpoint(tmp_path, synthetic_root,
                                            trained_work_dir, extra):
    work = str(tmp_path / 'test')
    out = str(tmp_path / 'pred')
    run_tool('test.py', STREET_CONFIG, _checkpoint(trained_work_dir),
             '--work-dir', work, '--out', out, *extra, '--cfg-options',
             *QUICK_OPTIONS, env={'MMSEG_OOD_DATA': synthetic_root})
    results = glob.glob(osp.join(work, '*', '*.json'))
    assert results, 'no metrics written'
    metrics = json.load(open(results[0]))
    assert 0.0 <= metrics['mIoU'] <= 100.0
    preds = sorted(glob.glob(osp.join(out, '*.png')))
    assert len(preds) == 2  # one prediction per val image


def test_resume_continues_from_the_checkpoint(tmp_path, synthetic_root,
                                              trained_work_dir):
    import shutil
    work = str(tmp_path / 'resume')
    shutil.copytree(trained_work_dir, work)
    opts = [o for o in QUICK_OPTIONS if not o.startswith('train_cfg.max')]
    proc = run_tool('train.py', STREET_CONFIG, '--work-dir', work,
                    '--resume', '--cfg-options', 'train_cfg.max_iters=3',
                    *opts, env={'MMSEG_OOD_DATA': synthetic_root})
    assert 'resumed' in (proc.stdout + proc.stderr).lower()
    assert osp.basename(_checkpoint(work)) == 'iter_3.pth'


def test_show_dir_writes_painted_images(tmp_path, synthetic_root,
                                        trained_work_dir):
    work = str(tmp_path / 'show')
    run_tool('test.py', STREET_CONFIG, _checkpoint(trained_work_dir),
             '--work-dir', work, '--show-dir', 'painted', '--cfg-options',
             *QUICK_OPTIONS, 'default_hooks.visualization.interval=1',
             env={'MMSEG_OOD_DATA': synthetic_root})
    assert len(glob.glob(osp.join(work, 'painted', '**', '*.png'),
                         recursive=True)) == 2


def test_missing_data_root_names_path_and_layout(tmp_path):
    proc = run_tool('train.py', STREET_CONFIG, '--work-dir',
                    str(tmp_path / 'w'), '--cfg-options', *QUICK_OPTIONS,
                    env={'MMSEG_OOD_DATA': str(tmp_path / 'nowhere')},
                    check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert 'FileNotFoundError' in err
    assert str(tmp_path / 'nowhere' / 'street' / 'images' / 'train') in err
    assert 'annotations/{train,val}/NNNN.png' in err
    assert 'tools/make_synthetic.py' in err


def test_unknown_type_names_it_and_the_choices(tmp_path, synthetic_root):
    proc = run_tool('train.py', STREET_CONFIG, '--work-dir',
                    str(tmp_path / 'w'), '--cfg-options', *QUICK_OPTIONS,
                    'model.decode_head.type=DepthwiseSeparableASPPHeed',
                    env={'MMSEG_OOD_DATA': synthetic_root}, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith('mmseg_ood.utils.config.UnknownTypeError')
    assert "'DepthwiseSeparableASPPHeed'" in err
    assert 'mmseg::model registry' in err
    assert "Did you mean 'DepthwiseSeparableASPPHead'" in err
    assert 'FCNHead' in err and 'EncoderDecoder' in err  # the choices


def test_missing_config_is_named(tmp_path):
    proc = run_tool('train.py', str(tmp_path / 'nope.py'), check=False)
    assert proc.returncode != 0
    assert f'config file not found: {tmp_path / "nope.py"}' in proc.stderr
