"""Two processes under torchrun (gloo, CPU) give what one process gives.

With 5 OOD images and 3 test images on 2 ranks, mmengine's sampler pads
each pass with a repeat of the first image; the accumulators leave it out.
Both runs use one thread per process (torchrun's default), so that the
forward passes are bit-identical too: then every number is.
"""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from conftest import QUICK_OPTIONS, STREET_CONFIG, run_tool


@pytest.fixture(scope='module')
def odd_root(tmp_path_factory):
    from mmseg_ood.synthetic import make_synthetic_benchmark
    out = str(tmp_path_factory.mktemp('odd'))
    make_synthetic_benchmark(out, seed=1, num_train=2, num_val=3,
                             num_ood=5, num_image_ood=1, num_proxy=1)
    return out


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def _run(script, tmp_path, odd_root, ckpt, nproc, *args):
    """``(work dir, process)`` of ``script`` in ``nproc`` processes."""
    work = str(tmp_path / f'{script}_{nproc}')
    return work, run_tool(
        script, STREET_CONFIG, ckpt, '--work-dir', work, *args,
        '--cfg-options', *QUICK_OPTIONS,
        env={'MMSEG_OOD_DATA': odd_root, 'OMP_NUM_THREADS': '1'},
        nproc=nproc if nproc > 1 else None)


def _runs(script, tmp_path, odd_root, ckpt, *args):
    return {n: _run(script, tmp_path, odd_root, ckpt, n, *args)
            for n in (1, 2)}


def test_ood_test_two_processes_equal_one(tmp_path, odd_root,
                                          trained_work_dir):
    """Also with the SMIYC export (one transform fitted on both ranks'
    pixels, each rank writing its frames), per-image metrics and
    thresholds at a TPR: the same numbers and the same files."""
    ckpt = _ckpt(trained_work_dir)
    runs = {n: _run('ood_test.py', tmp_path, odd_root, ckpt, n,
                    '--export-smiyc', str(tmp_path / f'smiyc_{n}'),
                    '--per-image', '--component-threshold', 'tpr:0.8')
            for n in (1, 2)}
    one, two = (json.load(open(osp.join(runs[n][0], 'results.json')))
                for n in (1, 2))
    assert one['complete'] and two['complete']
    assert two['results'] == one['results']   # every value, bit for bit
    assert two['id_miou'] == one['id_miou']
    energy = one['results']['synthetic_ood']['energy']
    assert energy['num_gt_components'] > 0
    assert energy['per_image_images'] == 5
    assert energy['component_threshold'] == energy['threshold@tpr0.8']
    # the two ranks logged to one file each, printed one table
    assert runs[2][1].stdout.count('| scorer |') == 1
    # every image's row (metrics and ground-truth facts) and the best and
    # worst images, gathered from both ranks, as one process has them
    per_image = [open(osp.join(runs[n][0], 'per_image.csv')).read()
                 for n in (1, 2)]
    assert per_image[0].count('\n') == 1 + 5 * 7 and \
        per_image[1] == per_image[0]
    extremes = [sorted(os.listdir(osp.join(runs[n][0], 'extremes',
                                           'synthetic_ood')))
                for n in (1, 2)]
    assert extremes[0] and extremes[1] == extremes[0]
    files = {n: sorted(glob.glob(str(tmp_path / f'smiyc_{n}' / '**' /
                                     '*.*'), recursive=True))
             for n in (1, 2)}
    assert len(files[1]) == 7 * (5 + 1)   # 5 frames + transform per scorer
    for a, b in zip(files[1], files[2]):
        assert osp.relpath(a, tmp_path / 'smiyc_1') == \
            osp.relpath(b, tmp_path / 'smiyc_2')
        if a.endswith('.json'):
            assert json.load(open(a)) == json.load(open(b))
        else:
            import h5py
            with h5py.File(a, 'r') as fa, h5py.File(b, 'r') as fb:
                assert (fa['value'][:] == fb['value'][:]).all(), a


def test_fit_on_id_two_processes_equal_one(tmp_path, odd_root,
                                          trained_work_dir):
    """The feature statistics and SML's, fitted on 3 val images over 2
    ranks (one padding repeat left out): the same counts, histogram and
    bank, the same compensated sums (added in another order), and the
    same metrics. (Plain float64 sums differed in their last bits, which
    ViM's subspace turned into AUROC 2e-5 apart on this model.)"""
    import numpy as np

    from mmseg_ood.scorers import FeatureStatistics, StandardizedMaxLogit
    ckpt = _ckpt(trained_work_dir)
    scorers = ['sml', 'react', 'vim:bank_size=3000', 'mahalanobis', 'rmd',
               'knn:bank_size=3000']
    runs = _runs('ood_test.py', tmp_path, odd_root, ckpt, '--scorers',
                 *scorers, '--fit-on', 'val', '--no-id-eval')
    stats = [FeatureStatistics.load(osp.join(runs[n][0],
                                             'feature_statistics_val.npz'))
             for n in (1, 2)]
    assert stats[0].pixels == stats[1].pixels == 3 * 32 * 64
    for key in ('class_count', 'histogram', 'bank_keys', 'bank'):
        np.testing.assert_array_equal(getattr(stats[1], key),
                                      getattr(stats[0], key))
    np.testing.assert_array_equal(stats[1].second_moment(),
                                  stats[0].second_moment())
    np.testing.assert_array_equal(stats[1].class_means(),
                                  stats[0].class_means())
    sml = [StandardizedMaxLogit(stats_file=osp.join(
        runs[n][0], 'sml_statistics_val.json')) for n in (1, 2)]
    np.testing.assert_array_equal(sml[1].stats.count, sml[0].stats.count)
    np.testing.assert_allclose(sml[1].mean, sml[0].mean, rtol=1e-12)
    one, two = (json.load(open(osp.join(runs[n][0], 'results.json')))
                for n in (1, 2))
    for name in scorers:
        for metric in ('auroc', 'ap', 'fpr95'):
            a = one['results']['synthetic_ood'][name][metric]
            b = two['results']['synthetic_ood'][name][metric]
            assert a == b, (name, metric, a, b)


@pytest.mark.slow  # the suite keeps ood_test and calibrate
def test_test_tool_two_processes_equal_one(tmp_path, odd_root,
                                           trained_work_dir):
    runs = _runs('test.py', tmp_path, odd_root, _ckpt(trained_work_dir))
    metrics = [json.load(open(glob.glob(osp.join(runs[n][0], '*',
                                                 '*.json'))[0]))
               for n in (1, 2)]
    for m in metrics:
        for k in ('time', 'data_time', 'step'):
            m.pop(k, None)
    assert metrics[0] == metrics[1] and 'mIoU' in metrics[0]


@pytest.mark.slow  # the suite keeps ood_test and calibrate
def test_train_runs_under_torchrun_on_cpu(tmp_path, odd_root):
    """mmengine's own set-up calls CUDA, and SyncBN trains on GPUs only:
    the package's set-up uses gloo and builds SyncBN as BN."""
    work = str(tmp_path / 'train')
    proc = run_tool('train.py', STREET_CONFIG, '--work-dir', work,
                    '--cfg-options', *QUICK_OPTIONS,
                    'model.backbone.norm_cfg.type=SyncBN',
                    'model.decode_head.norm_cfg.type=SyncBN',
                    env={'MMSEG_OOD_DATA': odd_root, 'OMP_NUM_THREADS': '1'},
                    nproc=2)
    assert osp.isfile(_ckpt(work))
    log = open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()
    assert 'SyncBN layers are built as BN' in proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log   # mmengine's name for the world size


@pytest.mark.slow  # the suite keeps ood_test and calibrate
def test_meta_classify_two_processes_equal_one(tmp_path, odd_root,
                                               trained_work_dir):
    """The segments of every image, each once, in one order: the same
    cross-validated tables and the same fitted classifier."""
    from conftest import score_quantiles
    ckpt = _ckpt(trained_work_dir)
    thresholds = score_quantiles(STREET_CONFIG, ckpt, odd_root, 'max_logit',
                                 [0.6, 0.85])
    runs = {n: _run('meta_classify.py', tmp_path, odd_root, ckpt, n,
                    '--scorer', 'max_logit', '--thresholds',
                    *map(repr, thresholds), '--cv', 'loo', '--save',
                    str(tmp_path / f'meta_{n}.json'))[0]
            for n in (1, 2)}
    one, two = (json.load(open(osp.join(runs[n], 'meta_results.json')))
                for n in (1, 2))
    assert two['results'] == one['results']
    row = one['results']['synthetic_ood'][repr(thresholds[0])]
    assert row['images'] == 5 and row['baseline']['segments'] > 0
    c1, c2 = (json.load(open(tmp_path / f'meta_{n}.json')) for n in (1, 2))
    assert c1['classifiers'] == c2['classifiers']



@pytest.mark.slow  # the suite keeps ood_test and calibrate
def test_robustness_test_two_processes_equal_one(tmp_path, odd_root,
                                                 trained_work_dir):
    ckpt = _ckpt(trained_work_dir)
    works = {}
    for n in (1, 2):
        work = str(tmp_path / f'robust_{n}')
        proc = run_tool(
            'robustness_test.py', STREET_CONFIG, ckpt, '--work-dir',
            work, '--corruptions', 'fog', '--severities', '2',
            '--ood-datasets', 'synthetic_ood', '--cfg-options',
            *QUICK_OPTIONS,
            env={'MMSEG_OOD_DATA': odd_root, 'OMP_NUM_THREADS': '1'},
            nproc=n if n > 1 else None)
        # only rank 0 reports and writes: both ranks once took themselves
        # for rank 0 (asked before the Runner set up the process group) and
        # raced on the partial results file
        assert proc.stdout.count('cell 1/2') == 1, proc.stdout
        assert proc.stdout.count('cell 2/2') == 1, proc.stdout
        works[n] = json.load(open(osp.join(work, 'robustness.json')))
    one, two = works[1]['cells'], works[2]['cells']
    assert set(one) == set(two) == {
        f'{osp.splitext(osp.basename(STREET_CONFIG))[0]}|{c}|ss'
        for c in ('clean|0', 'fog|2')}
    for key, cell in one.items():
        assert two[key]['miou'] == cell['miou']
        assert two[key]['ece'] == pytest.approx(cell['ece'], rel=1e-12)
        assert two[key]['ood'] == cell['ood']



@pytest.mark.parametrize('rule', [
    ['--id-fpr', '0.03'],
    pytest.param(['--tpr', '0.7', '--ood-dataset', 'synthetic_ood'],
                 marks=pytest.mark.slow)])
def test_calibrate_two_processes_equal_one(tmp_path, odd_root,
                                           trained_work_dir, rule):
    """The exact threshold's read-back of the spilled maps (one bin at full
    resolution, summed over ranks) and the per-image rates, merged across
    ranks: the same file (3 val images / 5 OOD images on 2 ranks, one
    padding repeat left out)."""
    runs = _runs('calibrate_ood.py', tmp_path, odd_root,
                 _ckpt(trained_work_dir), '--scorer', 'energy', *rule)
    one, two = (json.load(open(osp.join(runs[n][0], 'calibration.json')))
                for n in (1, 2))
    assert one['threshold'] == two['threshold']
    assert one['achieved'] == two['achieved']
    assert one['data'] == two['data']
    assert one['data']['images'] == (3 if rule[0] == '--id-fpr' else 5)

ENTRY_SCRIPT = '''
import argparse, sys
from mmseg_ood.tools.runner_args import (add_runner_arguments,
                                        ends_distributed_runs,
                                        parse_runner_args)

@ends_distributed_runs
def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('--fail', action='store_true')
    add_runner_arguments(p)
    args = parse_runner_args(p, argv)
    import torch.distributed as dist
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    print(f'rank {rank} done', flush=False)   # flushed by the decorator
    if args.fail and rank == 1:
        raise RuntimeError('rank 1 failed')
    return rank

main()
print('never printed: the worker left at the end of main')
'''


@pytest.mark.parametrize('fail', [False, True])
def test_finished_workers_exit_zero_and_failures_propagate(tmp_path, fail):
    """``ends_distributed_runs``: finished ranks leave with 0 and their
    output flushed; a rank's exception still fails the run."""
    script = tmp_path / 'entry.py'
    script.write_text(ENTRY_SCRIPT)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={port}', str(script), '--launcher', 'pytorch']
        + (['--fail'] if fail else []),
        capture_output=True, text=True, timeout=300,
        env={**os.environ, 'OMP_NUM_THREADS': '1'})
    if fail:
        assert proc.returncode != 0
        assert 'rank 1 failed' in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert 'rank 0 done' in proc.stdout and 'rank 1 done' in proc.stdout
        assert 'never printed' not in proc.stdout
