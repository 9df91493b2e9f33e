"""Bootstrap intervals over images of the pooled OOD metrics
(``OODMetric(bootstrap=...)``, ``ood_test --bootstrap N``): agreement with
an independent sklearn bootstrap on the same resamples, the binning bound,
coverage and narrowing, two ranks with padding, bad values."""
import json
import os.path as osp
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from conftest import QUICK_OPTIONS, STREET_CONFIG

from mmseg_ood.evaluation import OODMetric

NUM = 10
LEVEL = 0.9


def make_images(num=NUM, grid=None, seed=0):
    """``num`` images of different sizes: per-image score offsets, OOD
    shares from 0 to about 20 %, void pixels, two images without OOD.
    ``grid``: scores rounded to multiples of 1/grid (ties, few values)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num):
        h, w = 12 + i, 20 + 2 * (i % 3)
        lab = np.zeros((h, w), np.uint8)
        if i >= 2:
            lab[2:2 + i % 5 + 2, 3:3 + i] = 1
        lab[-2:, :] = 255
        s = rng.normal(0, 1, lab.shape) + 1.8 * (lab == 1) + \
            rng.normal(0, 0.6)
        if grid:
            s = np.round(s * grid) / grid
        out.append((f'{i:03d}.png', s.astype(np.float32), lab))
    return out


def sample(name, scores, lab):
    return dict(ood_scores=dict(energy=torch.from_numpy(scores)),
                gt_sem_seg=dict(data=torch.from_numpy(lab)[None]),
                img_path=name)


def evaluate(images, **bootstrap):
    metric = OODMetric(component_threshold=None, bootstrap=bootstrap)
    for name, s, lab in images:
        metric.process({}, [sample(name, s, lab)])
    metric.evaluate(len(images))
    return metric


def fpr95(y, s):
    """FPR at the first threshold (descending) where TPR >= 0.95."""
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return fpr[np.argmax(tpr >= 0.95)]


def reference(images, samples, seed, level):
    """The percentile intervals of sklearn's metrics over the same
    multinomial resamples of the images (each drawn image's pixels
    repeated), and each resample's pixels."""
    valid = [(s[lab != 255], lab[lab != 255]) for _, s, lab in images]
    n = len(valid)
    w = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n),
                                                size=samples)
    values = {k: [] for k in ('auroc', 'ap', 'fpr95')}
    draws = []
    for row in w:
        idx = np.repeat(np.arange(n), row)
        s = np.concatenate([valid[i][0] for i in idx])
        y = np.concatenate([valid[i][1] for i in idx])
        draws.append((s, y))
        if 0 < y.sum() < y.size:
            values['auroc'].append(roc_auc_score(y, s))
            values['ap'].append(average_precision_score(y, s))
            values['fpr95'].append(fpr95(y, s))
    q = [50 * (1 - level), 50 * (1 + level)]
    return {k: np.percentile(v, q) for k, v in values.items()}, draws


def test_intervals_equal_an_sklearn_bootstrap_on_the_same_resamples():
    """Scores with fewer distinct values than bins: every value is its own
    bin, so the intervals equal sklearn's on the same resamples to
    rounding (same seed -> same multinomial draws, images in name
    order)."""
    images = make_images(grid=8)
    assert len(np.unique(np.concatenate(
        [s.ravel() for _, s, _ in images]))) < 1024
    m = evaluate(images, samples=300, seed=7, level=LEVEL)
    ref, _ = reference(images, 300, 7, LEVEL)
    r = m.last_results['energy']
    for k in ('auroc', 'ap', 'fpr95'):
        assert r[f'{k}_ci'] == pytest.approx(list(ref[k]), abs=1e-12), k
        assert ref[k][1] - ref[k][0] > 0.01  # not a degenerate interval
        assert m.last_bootstrap['bin_error']['energy'][k] == \
            pytest.approx(0, abs=1e-12)
    assert m.last_bootstrap == dict(
        samples=300, seed=7, level=LEVEL, bins=1024, images=NUM,
        undefined=0, bin_error=m.last_bootstrap['bin_error'])
    # another seed draws other resamples
    other = evaluate(images, samples=300, seed=8, level=LEVEL)
    assert other.last_results['energy']['ap_ci'] != r['ap_ci']


def _bounds(s, y, knots):
    """The docstring's bounds of |binned - exact| for one resample."""
    b = np.searchsorted(knots, s, side='right')  # bins ascending
    size = knots.size + 1
    p = np.bincount(b, weights=y, minlength=size)[::-1]
    n = np.bincount(b, weights=1 - y, minlength=size)[::-1]
    P, N = p.sum(), n.sum()
    tp0, fp0 = np.cumsum(p) - p, np.cumsum(n) - n
    with np.errstate(invalid='ignore', divide='ignore'):
        hi = np.where(p > 0, (tp0 + p) / (tp0 + p + fp0), 0)
        lo = np.where(p > 0, (tp0 + 1) / (tp0 + 1 + fp0 + n), 0)
    c = np.argmax(np.cumsum(p) / P >= 0.95)
    return dict(auroc=np.sum(p * n) / (2 * P * N),
                ap=np.sum(p / P * (hi - lo)), fpr95=n[c] / N)


def test_binned_intervals_are_within_the_stated_bin_error():
    """Continuous scores in 32 bins: each interval end is within the
    largest resample's binning bound (module docstring) of sklearn's, and
    the binning does move it (the bound is not vacuous)."""
    from mmseg_ood.evaluation.accumulators.bootstrap import bootstrap_knots
    images = make_images(seed=3)
    m = evaluate(images, samples=200, seed=1, level=LEVEL, bins=32)
    ref, draws = reference(images, 200, 1, LEVEL)
    knots = bootstrap_knots(m.last_pixel['energy'], 32)
    assert 16 <= knots.size < 32
    bound = {k: 0.0 for k in ref}
    for s, y in draws:
        if 0 < y.sum() < y.size:
            for k, v in _bounds(s, y.astype(float), knots).items():
                bound[k] = max(bound[k], v)
    r = m.last_results['energy']
    moved = 0.0
    for k in ('auroc', 'ap', 'fpr95'):
        d = np.abs(np.array(r[f'{k}_ci']) - ref[k])
        assert (d <= bound[k] + 1e-12).all(), (k, d, bound[k])
        assert bound[k] < 0.2, (k, bound[k])
        moved = max(moved, d.max())
    assert moved > 1e-6


def test_interval_contains_the_point_and_narrows_with_duplicated_images():
    """Four copies of every image: the pooled metrics stay, the intervals
    hold them and shrink (about by half: sqrt(4))."""
    images = make_images(seed=5)
    copies = [(f'{c}_{name}', s, lab) for c in range(4)
              for name, s, lab in images]
    once = evaluate(images, samples=400, seed=0).last_results['energy']
    four = evaluate(copies, samples=400, seed=0).last_results['energy']
    for k in ('auroc', 'ap', 'fpr95'):
        assert four[k] == pytest.approx(once[k], abs=1e-12)
        for r in (once, four):
            lo, hi = r[f'{k}_ci']
            assert lo <= r[k] <= hi, (k, r[k], lo, hi)
        wide = once[f'{k}_ci'][1] - once[f'{k}_ci'][0]
        narrow = four[f'{k}_ci'][1] - four[f'{k}_ci'][0]
        assert 0 < narrow < 0.75 * wide, (k, narrow, wide)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world, port, path, size):
    import torch.distributed as dist
    from mmengine.dataset import DefaultSampler
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world)
    import mmseg_ood  # noqa: F401
    images = make_images(size)
    metric = OODMetric(component_threshold=None,
                       bootstrap=dict(samples=100, seed=2))
    # mmengine's sampler pads an odd count with a repeat of the first
    for i in DefaultSampler(list(range(size)), shuffle=False):
        metric.process({}, [sample(*images[i])])
    out = metric.evaluate(size)
    torch.save(dict(out=out, info=metric.last_bootstrap), f'{path}.{rank}')
    dist.destroy_process_group()


def test_two_ranks_with_padding_equal_one_process(tmp_path):
    """Per-image histograms gathered from two gloo ranks, the padding
    repeat left out: the same intervals, bit for bit."""
    size = 5
    ref = evaluate(make_images(size), samples=100, seed=2)
    path = str(tmp_path / 'out')
    mp.spawn(_worker, args=(2, _free_port(), path, size), nprocs=2,
             join=True)
    for rank in range(2):
        got = torch.load(f'{path}.{rank}', weights_only=False)
        assert got['info']['images'] == size
        for k in ('auroc', 'ap', 'fpr95'):
            assert got['out'][f'ood/energy/{k}_ci'] == \
                ref.last_results['energy'][f'{k}_ci'], (rank, k)


@pytest.mark.parametrize('bootstrap, match', [
    (dict(samples=0), 'samples must be an int >= 1, got 0'),
    (dict(samples=-5), 'samples must be an int >= 1, got -5'),
    (dict(seed=1), 'samples must be an int >= 1, got None'),
    (dict(samples=10, level=1.0), r'level must be in \(0, 1\), got 1.0'),
    (dict(samples=10, level=0), r'level must be in \(0, 1\), got 0'),
    (dict(samples=10, bins=1), r'bins must be an int in \[2, 15360\]'),
    (dict(samples=10, seed=-1), 'seed must be an int >= 0'),
    (dict(samples=10, sample=3), r"unknown keys \['sample'\]"),
    (100, 'must be a dict'),
])
def test_bad_bootstrap_arguments_are_named(bootstrap, match, tmp_path):
    from mmseg_ood.apis import ood_test
    with pytest.raises((ValueError, TypeError), match=match):
        OODMetric(bootstrap=bootstrap)
    # the API refuses it before anything is read or written
    with pytest.raises((ValueError, TypeError), match=match):
        ood_test(STREET_CONFIG, str(tmp_path / 'missing.pth'),
                 str(tmp_path / 'work'), bootstrap=bootstrap)
    assert not (tmp_path / 'work').exists()


@pytest.mark.parametrize('args, flag', [
    (['--bootstrap', '0'], 'argument --bootstrap: must be a number of '
     "resamples >= 1, got '0'"),
    (['--bootstrap', '-3'], 'argument --bootstrap: must be a number of '
     "resamples >= 1, got '-3'"),
    (['--bootstrap', 'many'], 'argument --bootstrap: must be'),
    (['--bootstrap', '10', '--bootstrap-level', '1.5'],
     "argument --bootstrap-level: must be in (0, 1), e.g. 0.95, got '1.5'"),
    (['--bootstrap', '10', '--bootstrap-level', '0'],
     'argument --bootstrap-level: must be in (0, 1)'),
    (['--bootstrap', '10', '--bootstrap-seed', '-1'],
     'argument --bootstrap-seed: must be an int >= 0'),
    (['--bootstrap-level', '0.9'], '--bootstrap-level needs --bootstrap N'),
])
def test_bad_flags_give_one_line_naming_the_flag(args, flag, capsys):
    from mmseg_ood.tools.ood_test import parse_args
    with pytest.raises(SystemExit) as info:
        parse_args([STREET_CONFIG, 'x.pth', *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert 'error: ' in last and flag in last, err
    assert 'Traceback' not in err


def test_ood_test_writes_intervals(tmp_path, monkeypatch, synthetic_root,
                                   trained_work_dir):
    """``--bootstrap`` end to end: intervals per scorer in results.json
    (around the point estimates), the settings once, brackets in
    results.md, columns in results.csv."""
    from mmseg_ood.tools.ood_test import main
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    ckpt = open(osp.join(trained_work_dir,
                         'last_checkpoint')).read().strip()
    work = tmp_path / 'work'
    main([STREET_CONFIG, ckpt, '--work-dir', str(work), '--scorers', 'msp',
          'energy', '--no-id-eval', '--bootstrap', '50', '--bootstrap-seed',
          '4', '--bootstrap-level', '0.8', '--cfg-options', *QUICK_OPTIONS])
    res = json.load(open(work / 'results.json'))
    b = res['bootstrap']
    assert {k: b[k] for k in ('samples', 'seed', 'level', 'bins')} == dict(
        samples=50, seed=4, level=0.8, bins=1024)
    assert b['images'] == {'synthetic_ood': 3}
    assert set(b['bin_error']['synthetic_ood']) == {'msp', 'energy'}
    for r in res['results']['synthetic_ood'].values():
        for k in ('auroc', 'ap', 'fpr95'):
            lo, hi = r[f'{k}_ci']
            assert 0 <= lo <= hi <= 1
    md = (work / 'results.md').read_text()
    energy = res['results']['synthetic_ood']['energy']
    lo, hi = energy['ap_ci']
    assert f'{100 * energy["ap"]:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]' \
        in md
    assert '80 % percentile bootstrap intervals over images, 50 ' \
        'resamples (seed 4, 1024 bins; images: synthetic_ood 3)' in md
    header = (work / 'results.csv').read_text().splitlines()[0]
    assert 'ap_ci_low,ap_ci_high' in header
