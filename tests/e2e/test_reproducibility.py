"""What a rerun needs: the run record every results file carries, and
training that gives the same checkpoint bit for bit under the same settings
(seed, thread count, software, machine)."""
import json
import os.path as osp
import subprocess

import pytest
import torch

from conftest import ONE_THREAD_ENV, QUICK_OPTIONS, STREET_CONFIG, run_tool
from mmseg_ood.reports.results import run_markdown
from mmseg_ood.utils.run_record import run_record, source_commit

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _train(work, synthetic_root, *options):
    run_tool('train.py', STREET_CONFIG, '--work-dir', str(work),
             '--cfg-options', *QUICK_OPTIONS, *options,
             env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    ckpt = open(osp.join(work, 'last_checkpoint')).read().strip()
    return torch.load(ckpt, map_location='cpu', weights_only=False)


def _differing(a: dict, b: dict) -> list:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


@pytest.mark.slow  # trains: opt-in (--run-slow), the suite stays < 20 min
def test_training_twice_gives_the_same_checkpoint_bit_for_bit(
        tmp_path, synthetic_root):
    first = _train(tmp_path / 'a', synthetic_root, 'randomness.seed=0')
    second = _train(tmp_path / 'b', synthetic_root, 'randomness.seed=0')
    assert _differing(first['state_dict'], second['state_dict']) == []
    # the optimizer's moments too: a resumed run continues identically
    for sa, sb in zip(first['optimizer']['state'].values(),
                      second['optimizer']['state'].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa
                   if torch.is_tensor(sa[k]))
    assert first['meta']['seed'] == second['meta']['seed'] == 0
    # the control: another seed gives other weights, so the comparison
    # above can fail
    other = _train(tmp_path / 'c', synthetic_root, 'randomness.seed=1')
    assert other['meta']['seed'] == 1
    assert len(_differing(first['state_dict'], other['state_dict'])) > 10


def test_run_record_holds_what_a_rerun_needs():
    from mmengine import Config
    cfg = Config(dict(randomness=dict(seed=3, deterministic=False)))
    record = run_record(cfg, dict(seed=7, mmengine_version='0.10.7'))
    assert record['seed'] == dict(run=3, checkpoint_training=7)
    assert record['threads']['torch'] == torch.get_num_threads()
    assert record['deterministic']['config'] is False
    assert record['versions']['torch'] == torch.__version__
    for lib in ('mmcv', 'mmengine', 'mmseg', 'mmseg_ood', 'python'):
        assert record['versions'][lib], lib
    head = subprocess.run(['git', '-C', REPO, 'rev-parse', 'HEAD'],
                          capture_output=True, text=True)
    if head.returncode == 0:  # run from a checkout
        assert record['commit'] == head.stdout.strip()
        assert isinstance(record['dirty'], bool)
    json.dumps(record, allow_nan=False)  # plain JSON
    text = run_markdown(record)
    assert 'seed 3 (checkpoint trained with seed 7)' in text
    assert f'{torch.get_num_threads()} torch threads' in text


def test_outside_a_checkout_the_commit_is_none(tmp_path):
    assert source_commit(str(tmp_path)) == dict(commit=None, dirty=None)
