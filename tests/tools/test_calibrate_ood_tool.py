"""tools/calibrate_ood.py: exact thresholds from a stream, achieved rates
with intervals that hold on held-out data, and the calibration file."""
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch

from conftest import (ONE_THREAD_ENV, QUICK_OPTIONS, STREET_CONFIG, one_thread,
                      run_tool)
from mmseg_ood.formats.threshold_file import (CalibrationMismatchError,
                                              OODCalibration)
from mmseg_ood.evaluation import OperatingPointMetric, rate_interval
from mmseg_ood.evaluation.metrics.operating_point import (count_at_least,
                                                          count_at_most)


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def _run_metric(metric, maps, labels=None):
    samples = []
    for i, m in enumerate(maps):
        s = dict(ood_scores={'s': torch.from_numpy(m)}, img_path=f'im{i}')
        if labels is not None:
            s['gt_sem_seg'] = dict(data=torch.from_numpy(labels[i])[None])
        samples.append(s)
    metric.process(None, samples)
    return metric.evaluate(len(maps))


def _numpy_id_threshold(s, alpha):
    """The smallest score above the (1 - alpha) inverted-CDF quantile."""
    w = np.quantile(s, 1 - alpha, method='inverted_cdf')
    above = s[s > w]
    return above.min() if above.size else np.nextafter(w, np.float32(np.inf))


@pytest.mark.parametrize('bits', [12, 20])
@pytest.mark.parametrize('alpha', [0.001, 0.01, 0.05, 0.3, 0.5])
def test_id_quantile_equals_numpy(alpha, bits):
    """Heavy ties, several binades, and bins wider than the spacing of the
    scores (bits=12): the threshold is numpy's, to the float32 value."""
    rng = np.random.default_rng(int(alpha * 1e4) + bits)
    maps = [(rng.standard_cauchy((24, 40)) * 2).astype(np.float32)
            for _ in range(5)]
    maps[1][:6] = 0.75                      # a heavy tie
    maps[3] = np.round(maps[3], 1)          # many small ties
    m = OperatingPointMetric('s', 'id_fpr', alpha, labels='id', bits=bits)
    _run_metric(m, maps)
    s = np.concatenate([x.ravel() for x in maps])
    t = m.last_result['threshold']
    assert t == float(_numpy_id_threshold(s, alpha))
    flagged = int((s >= np.float32(t)).sum())
    assert flagged <= alpha * s.size
    # no lower threshold stays within the target: the next lower score
    # already flags more than alpha
    lower = s[s < np.float32(t)].max()
    assert (s >= lower).sum() > alpha * s.size
    achieved = m.last_result['achieved']['id_fpr']
    assert achieved['pixels'] == flagged and achieved['of'] == s.size


def test_id_threshold_at_a_float_rounding_edge():
    """(1 - 0.7) * 10 = 3.0000000000000004: numpy's inverted-CDF quantile
    lands one score higher; the rule K = max{k : k / N <= alpha} flags the
    7 pixels the target allows."""
    s = np.arange(10, dtype=np.float32).reshape(2, 5)
    m = OperatingPointMetric('s', 'id_fpr', 0.7, labels='id')
    _run_metric(m, [s])
    assert m.last_result['threshold'] == 3.0
    assert m.last_result['achieved']['id_fpr']['pixels'] == 7
    assert _numpy_id_threshold(s.ravel(), 0.7) == 4.0


def test_void_pixels_are_not_id_and_the_maximum_edge_case():
    maps = [np.arange(12, dtype=np.float32).reshape(3, 4)]
    gt = [np.zeros((3, 4), np.uint8)]
    gt[0][2, :] = 255                       # scores 8..11 are void
    m = OperatingPointMetric('s', 'id_fpr', 0.05, labels='id')
    _run_metric(m, maps, gt)
    # 8 ID pixels, 0.05 * 8 < 1: no pixel may be flagged; the threshold is
    # just above the largest ID score (7), not at a void one
    assert m.last_result['threshold'] == float(
        np.nextafter(np.float32(7), np.float32(np.inf)))
    assert m.last_result['achieved']['id_fpr']['pixels'] == 0
    assert m.last_result['id_pixels'] == 8


def test_tpr_threshold_is_exact_and_best_f1_matches_the_curve():
    from mmseg_ood.evaluation import pixel_ood_metrics
    rng = np.random.default_rng(1)
    maps, labels = [], []
    for _ in range(4):
        y = (rng.random((20, 30)) < 0.2).astype(np.uint8)
        y[0, :3] = 255
        maps.append((rng.normal(size=(20, 30)) + 2.0 * y).astype(np.float32))
        labels.append(y)
    s = np.concatenate([m.ravel() for m in maps])
    y = np.concatenate([x.ravel() for x in labels])
    ood = np.sort(s[y == 1])[::-1]
    for rate in (0.5, 0.9, 0.95):
        m = OperatingPointMetric('s', 'tpr', rate)
        _run_metric(m, maps, labels)
        k = count_at_least(rate, ood.size)
        assert m.last_result['threshold'] == float(ood[k - 1])
        tpr = m.last_result['achieved']['tpr']
        assert tpr['pixels'] >= k and tpr['value'] >= rate
    m = OperatingPointMetric('s', 'best_f1', None, bits=24)
    _run_metric(m, maps, labels)
    exact = pixel_ood_metrics(s[y != 255], y[y != 255])
    assert m.last_result['achieved']['f1']['value'] == pytest.approx(
        exact['best_f1'], abs=1e-12)


def test_counts_at_rates():
    assert count_at_most(0.05, 100) == 5 and count_at_most(0.05, 99) == 4
    assert count_at_least(0.95, 100) == 95 and count_at_least(0.95, 101) == 96
    assert count_at_least(0.3, 10) == 3   # 0.3 * 10 = 3.0000000000000004


def test_bin_value_counts_merge_in_any_split_and_count_exactly():
    """The read-back's per-value counts follow the merge protocol (the one
    way states cross ranks): two halves merged equal one pass, and each
    count equals numpy's count of that float32 value."""
    from mmseg_ood.evaluation.metrics.operating_point import BinValueCounts
    from mmseg_ood.evaluation.functional.float_keys import order_keys
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=5000), 3).astype(np.float32)
    y = (rng.random(5000) < 0.3).astype(np.uint8)
    bits = 20
    shift = np.uint32(32 - bits)
    keys = order_keys(s)
    bins = np.unique(keys >> shift)[[3, 40]]
    one = BinValueCounts(bins, 1 << (32 - bits))
    one.update(keys, y, shift)
    halves = [BinValueCounts(bins, 1 << (32 - bits)) for _ in range(2)]
    halves[0].update(keys[:1234], y[:1234], shift)
    halves[1].update(keys[1234:], y[1234:], shift)
    merged = halves[0].empty_like().merge(halves[0]).merge(halves[1])
    for b in bins:
        np.testing.assert_array_equal(merged.compute()[b], one.compute()[b])
        for value in np.unique(s[(keys >> shift) == b]):
            j = int(order_keys(np.array([value]))[0] & ((1 << 12) - 1))
            counts = one.compute()[b][:, j]
            for c in (0, 1):
                assert counts[c] == np.sum((s == value) & (y == c))
    with pytest.raises(ValueError, match='does not fit'):
        one.load_state_dict(dict(counts={-1: np.zeros((2, 4096), np.int64)}))


def _clustered(rng, images, pixels, spread=0.5):
    """ID scores with a per-image offset: pixels of an image correlate."""
    offsets = rng.normal(scale=spread, size=(images, 1))
    return (offsets + rng.normal(size=(images, pixels))).astype(np.float32)


def test_interval_covers_the_held_out_rate():
    """The image-level interval holds the rate on held-out data about as
    often as its level says; a binomial interval over pixels (ignoring that
    pixels of an image correlate) would not."""
    from scipy.stats import norm
    rng = np.random.default_rng(0)
    held_out = _clustered(rng, 4000, 200).ravel()
    trials, covered, naive = 300, 0, 0
    z = norm.ppf(0.975)
    for _ in range(trials):
        cal = _clustered(rng, 40, 200)
        t = _numpy_id_threshold(cal.ravel(), 0.05)
        r = rate_interval((cal >= t).sum(1), np.full(40, 200))
        true = (held_out >= t).mean()
        covered += r['low'] <= true <= r['high']
        p, n = r['value'], cal.size
        half = z * np.sqrt(p * (1 - p) / n)
        naive += p - half <= true <= p + half
    assert 0.90 <= covered / trials <= 0.99
    assert naive / trials < 0.75


def test_metric_interval_on_a_constructed_case():
    rng = np.random.default_rng(3)
    cal = _clustered(rng, 60, 400)
    m = OperatingPointMetric('s', 'id_fpr', 0.02, labels='id')
    _run_metric(m, [row.reshape(20, 20) for row in cal])
    r = m.last_result['achieved']['id_fpr']
    held_out = _clustered(rng, 3000, 400)
    fpr = (held_out >= np.float32(m.last_result['threshold'])).mean()
    assert r['low'] <= fpr <= r['high']
    assert r['value'] <= 0.02 and r['images'] == 60
    assert r['low'] < r['value'] < r['high']


def test_bad_metric_arguments():
    with pytest.raises(ValueError, match='rate in \\(0, 1\\)'):
        OperatingPointMetric('s', 'id_fpr', 1.5, labels='id')
    with pytest.raises(ValueError, match='needs OOD labels'):
        OperatingPointMetric('s', 'tpr', 0.9, labels='id')
    with pytest.raises(ValueError, match='must be one of'):
        OperatingPointMetric('s', 'fpr', 0.9)
    m = OperatingPointMetric('s', 'tpr', 0.9)
    with pytest.raises(ValueError, match='no OOD pixels'):
        _run_metric(m, [np.zeros((2, 2), np.float32)],
                    [np.zeros((2, 2), np.uint8)])
    m = OperatingPointMetric('s', 'id_fpr', 0.1, labels='id')
    with pytest.raises(ValueError, match="'s' produced 1 NaN"):
        _run_metric(m, [np.array([[0, np.nan]], np.float32)])


# the calibration file ------------------------------------------------------
def _calibration(**kw):
    args = dict(scorer_name='energy', scorer_config={'type': 'energy'},
                threshold=-3.5, rule='id_fpr', target=0.01, dataset='val',
                checkpoint_sha256='a' * 64,
                model=dict(checkpoint='/models/a.pth', num_classes=6))
    args.update(kw)
    return OODCalibration(**args)


def test_file_round_trip_and_refusals(tmp_path):
    c = _calibration()
    path = c.save(str(tmp_path / 'calibration.json'))
    back = OODCalibration.load(str(tmp_path))  # a directory works too
    assert back.to_dict() == c.to_dict()
    with pytest.raises(CalibrationMismatchError) as info:
        back.check_matches(checkpoint_sha256='b' * 64,
                           checkpoint='/models/b.pth')
    assert '/models/a.pth' in str(info.value)
    assert '/models/b.pth' in str(info.value)
    with pytest.raises(CalibrationMismatchError, match="'energy'.*'msp'"):
        back.check_matches(scorer='msp')
    back.check_matches(scorer='energy', checkpoint_sha256='a' * 64)
    d = json.load(open(path))
    assert d['schema_version'] == 2
    for key, value, message in [
            ('schema_version', 3, 'newer than this mmseg_ood reads'),
            ('format', 'other', 'not an mmseg_ood calibration'),
            ('threshold', float('nan'), 'finite number'),
            ('decision', 'score > threshold', 'is not')]:
        bad = dict(d, **{key: value})
        with pytest.raises(ValueError, match=message):
            OODCalibration.from_dict(bad, source='x.json')
    del d['scorer']['config']
    with pytest.raises(ValueError,
                       match="x.json: scorer: the field 'config' is "
                       'missing'):
        OODCalibration.from_dict(d, source='x.json')
    (tmp_path / 'bad.json').write_text('{')
    with pytest.raises(ValueError, match='bad.json is not valid JSON'):
        OODCalibration.load(str(tmp_path / 'bad.json'))


# the tool ------------------------------------------------------------------
def test_tool_threshold_equals_numpy_on_the_models_scores(
        tmp_path, synthetic_root, trained_work_dir):
    """End to end: the threshold equals numpy's quantile of the scores of
    the val images computed independently (score_image), and the file
    refuses another checkpoint."""
    ckpt = _ckpt(trained_work_dir)
    work = tmp_path / 'cal'
    # both sides on one thread (the forward pass differs in its last bits
    # across thread counts), and a tolerance of a few float32 steps
    proc = run_tool('calibrate_ood.py', STREET_CONFIG, ckpt, '--scorer',
                    'energy', '--id-fpr', '0.05', '--work-dir', str(work),
                    '--cfg-options', *QUICK_OPTIONS,
                    env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    assert 'threshold' in proc.stdout and 'id_fpr: 0.0' in proc.stdout
    cal = OODCalibration.load(str(work / 'calibration.json'))
    from mmseg_ood.apis import init_model, score_image
    model = init_model(STREET_CONFIG, ckpt)
    images = sorted(glob.glob(osp.join(synthetic_root, 'street', 'images',
                                       'val', '*.png')))
    assert images
    with one_thread():
        s = np.concatenate([
            score_image(model, f, ['energy'])['energy'].ravel()
            for f in images])
    tol = 1e-6 * max(1.0, abs(cal.threshold))
    assert abs(cal.threshold - float(_numpy_id_threshold(s, 0.05))) <= tol
    near = int((np.abs(s - cal.threshold) <= tol).sum())
    assert abs(cal.achieved['id_fpr']['pixels'] -
               int((s >= cal.threshold).sum())) <= near
    assert cal.data['images'] == len(images)
    assert cal.model['num_classes'] == 6 and cal.rule == 'id_fpr'
    cal.check_matches(checkpoint=ckpt, scorer='energy')
    # bound to the weights, not the file: a weights-only copy matches
    assert cal.state_dict_sha256 and cal.model['definition']['backbone']
    assert len(cal.model['classes']) == 6
    resaved = str(tmp_path / 'weights_only.pth')
    torch.save({'state_dict': torch.load(ckpt, weights_only=False)[
        'state_dict']}, resaved)
    cal.check_matches(checkpoint=resaved, scorer='energy')
    other = osp.join(trained_work_dir, 'iter_1.pth')
    if not osp.exists(other):
        other = str(tmp_path / 'other.pth')
        torch.save({'state_dict': {}}, other)
    with pytest.raises(CalibrationMismatchError, match='other|iter_1'):
        cal.check_matches(checkpoint=other)


@pytest.mark.parametrize('args, message', [
    ([], 'one of the arguments --id-fpr --tpr --best-f1 is required'),
    (['--id-fpr', '0.01', '--tpr', '0.9'], 'not allowed with'),
    (['--id-fpr', '1.5'], 'must be a rate in \\(0, 1\\)'),
])
def test_tool_argument_errors(tmp_path, args, message):
    proc = run_tool('calibrate_ood.py', STREET_CONFIG, 'missing.pth',
                    '--work-dir', str(tmp_path), *args, check=False)
    assert proc.returncode == 2
    assert message.replace('\\', '') in proc.stderr or \
        __import__('re').search(message, proc.stderr)


def test_api_refuses_bad_requests_before_running(tmp_path):
    from mmseg_ood.apis import calibrate_ood
    with pytest.raises(ValueError, match='needs a labelled OOD set'):
        calibrate_ood(STREET_CONFIG, 'missing.pth', tpr=0.9)
    with pytest.raises(ValueError, match='exactly one of'):
        calibrate_ood(STREET_CONFIG, 'missing.pth')
    with pytest.raises(ValueError, match='must not set `type`'):
        calibrate_ood(STREET_CONFIG, 'missing.pth', id_fpr=0.1,
                      scorer_options={'type': 'msp'})
    with pytest.raises(ValueError, match="unknown scorer 'no_such"):
        calibrate_ood(STREET_CONFIG, 'missing.pth', id_fpr=0.1,
                      scorer='no_such_scorer')
    with pytest.raises(ValueError, match='--sml-stats'):
        calibrate_ood(STREET_CONFIG, 'missing.pth', id_fpr=0.1,
                      scorer='sml', scorer_options={'stats_file': 'x.json'})
    with pytest.raises(ValueError, match='--ood-label must be None or an'):
        calibrate_ood(STREET_CONFIG, 'missing.pth', id_fpr=0.1,
                      ood_label=300)
