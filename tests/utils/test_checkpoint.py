"""Safe checkpoint loading (torch >= 2.6, weights_only=True)."""
import argparse
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from mmseg_ood.utils import (UnsafeCheckpointError, load_checkpoint_file,
                             safe_checkpoint_loading)


def _runner_checkpoint(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def test_runner_checkpoint_needs_more_than_torch_allows(trained_work_dir):
    # The problem this module solves: torch's default refuses the file.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(_runner_checkpoint(trained_work_dir), weights_only=True)


def test_runner_checkpoint_loads_safely(trained_work_dir):
    ckpt = load_checkpoint_file(_runner_checkpoint(trained_work_dir))
    assert {'meta', 'state_dict', 'message_hub', 'optimizer'} <= set(ckpt)
    assert ckpt['meta']['iter'] == 2
    buffers = ckpt['message_hub']['log_scalars']
    assert any(k.endswith('loss') for k in buffers)
    w = ckpt['state_dict']['decode_head.conv_seg.weight']
    assert isinstance(w, torch.Tensor) and w.shape[0] == 6


def test_mmengine_load_checkpoint_goes_through_safe_loader(trained_work_dir):
    path = _runner_checkpoint(trained_work_dir)
    model = torch.nn.Module()
    before = CheckpointLoader._schemes['']
    with safe_checkpoint_loading():
        ckpt = load_checkpoint(model, path, strict=False, logger='silent')
    assert CheckpointLoader._schemes[''] is before  # restored
    assert ckpt['meta']['iter'] == 2


def test_model_zoo_checkpoint_without_meta_loads(tmp_path):
    path = str(tmp_path / 'zoo.pth')
    torch.save({'state_dict': {'w': torch.ones(2, 3)}}, path)
    assert torch.equal(load_checkpoint_file(path)['state_dict']['w'],
                       torch.ones(2, 3))
    torch.save({'w': torch.zeros(1)}, path)  # bare state dict
    assert 'w' in load_checkpoint_file(path)


def test_numpy_metadata_loads(tmp_path):
    path = str(tmp_path / 'np.pth')
    torch.save({'meta': {'hist': np.arange(4.0), 'best': np.float32(0.5),
                         'dtype': np.dtype('int64')}}, path)
    meta = load_checkpoint_file(path)['meta']
    np.testing.assert_array_equal(meta['hist'], np.arange(4.0))
    assert meta['best'] == np.float32(0.5)


def test_foreign_global_is_refused_with_the_flag_named(tmp_path):
    path = str(tmp_path / 'foreign.pth')
    torch.save({'state_dict': {}, 'args': argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_file(path)
    msg = str(info.value)
    assert 'argparse.Namespace' in msg
    assert '--unsafe-load' in msg
    assert path in msg
    # ... and loads when the user opts in
    assert load_checkpoint_file(path, unsafe=True)['args'].lr == 0.1


def test_foreign_global_is_refused_through_the_runner_path(tmp_path):
    path = str(tmp_path / 'foreign.pth')
    torch.save({'state_dict': {}, 'args': argparse.Namespace()}, path)
    with safe_checkpoint_loading(), pytest.raises(UnsafeCheckpointError,
                                                  match='unsafe-load'):
        load_checkpoint(torch.nn.Module(), path, logger='silent')


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


def test_runner_checkpoint_hash_is_its_weights(trained_work_dir, tmp_path):
    from mmseg_ood.utils import state_dict_sha256
    ckpt = load_checkpoint_file(_runner_checkpoint(trained_work_dir))
    path = str(tmp_path / 'weights.pth')
    torch.save(ckpt['state_dict'], path)  # a bare state dict
    assert state_dict_sha256(load_checkpoint_file(path)) == \
        state_dict_sha256(ckpt)


def test_test_tool_refuses_foreign_checkpoint(tmp_path, synthetic_root,
                                              trained_work_dir, monkeypatch):
    from conftest import QUICK_OPTIONS, STREET_CONFIG, run_tool
    ckpt = load_checkpoint_file(_runner_checkpoint(trained_work_dir))
    ckpt['meta']['args'] = argparse.Namespace(x=1)
    path = str(tmp_path / 'foreign.pth')
    torch.save(ckpt, path)
    args = [STREET_CONFIG, path, '--work-dir', str(tmp_path / 'w'),
            '--cfg-options', *QUICK_OPTIONS]
    env = {'MMSEG_OOD_DATA': synthetic_root}
    proc = run_tool('test.py', *args, env=env, check=False)
    assert proc.returncode == 2  # a user error: one line, no traceback
    assert proc.stderr.strip().startswith('test: error: checkpoint ')
    assert len(proc.stderr.strip().splitlines()) == 1
    assert 'argparse.Namespace' in proc.stderr
    assert '--unsafe-load' in proc.stderr
    # the opt-in works (what the tool calls, in-process)
    from conftest import QUICK_CFG
    from mmseg_ood.apis import test
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    metrics = test(STREET_CONFIG, path, str(tmp_path / 'w2'),
                   cfg_options=dict(QUICK_CFG), unsafe_load=True)
    assert 'mIoU' in metrics


@pytest.mark.parametrize('target', ['OrderedDict.fromkeys',
                                    'HistoryBuffer.__init__'])
def test_getattr_is_allowed_only_on_history_buffer_methods(tmp_path, target):
    import collections

    from mmengine.logging.history_buffer import HistoryBuffer
    owner, name = target.split('.')
    obj = {'OrderedDict': collections.OrderedDict,
           'HistoryBuffer': HistoryBuffer}[owner]

    class Payload:  # pickles as getattr(obj, name); both globals allowed
        def __reduce__(self):
            return (getattr, (obj, name))

    path = str(tmp_path / 'getattr.pth')
    torch.save({'x': Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match=f'getattr.*{name}'):
        load_checkpoint_file(path)
