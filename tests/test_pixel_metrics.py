"""Pixel-level OOD metrics against scikit-learn."""
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from mmseg_ood.evaluation import (StreamingOODMetric, UndefinedMetricWarning,
                                  pixel_ood_metrics)


def sklearn_reference(s, y):
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return dict(auroc=roc_auc_score(y, s), ap=average_precision_score(y, s),
                fpr95=fpr[np.searchsorted(tpr, 0.95, side='left')])


def distributions():
    rng = np.random.default_rng(0)
    n = 60000
    y = (rng.random(n) < 0.15).astype(np.uint8)
    out = {
        'gaussian': rng.normal(0, 1, n) + 1.5 * y,
        # energies: unbounded, large negative magnitudes
        'energy_like': -rng.gamma(5.0, 4.0, n) * (1 - 0.3 * y) - 20,
        # heavy ties: few distinct values
        'heavy_ties': np.round(rng.normal(0, 1, n) + y, 1),
        'binary_ties': (rng.random(n) < 0.3 + 0.4 * y).astype(np.float64),
        'constant': np.full(n, 0.25),
        'probabilities': 1 / (1 + np.exp(-(rng.normal(0, 2, n) + 2 * y))),
        # an untrained model's MSP: all scores within 1e-5 of 0.8333
        'tight_cluster': (0.8333 + 1e-6 * (rng.normal(0, 2, n) + 2 * y)
                          ).astype(np.float32).astype(np.float64),
        'huge_range': np.exp(rng.normal(0, 8, n) + 3 * y) *
        np.where(rng.random(n) < 0.5, -1, 1),
    }
    return {k: (v, y) for k, v in out.items()}


DISTS = distributions()


@pytest.mark.parametrize('name', list(DISTS))
def test_exact_one_shot_equals_sklearn(name):
    s, y = DISTS[name]
    ours = pixel_ood_metrics(s, y)
    ref = sklearn_reference(s, y)
    for k in ('auroc', 'ap', 'fpr95'):
        assert ours[k] == pytest.approx(ref[k], abs=1e-9), k
    assert ours['num_ood'] == y.sum() and ours['num_id'] == (y == 0).sum()


@pytest.mark.parametrize('name', list(DISTS))
def test_streaming_close_to_sklearn(name):
    s, y = DISTS[name]
    m = StreamingOODMetric(name=name)
    for a, b in zip(np.array_split(s, 9), np.array_split(y, 9)):
        m.update(a.reshape(1, -1), b.reshape(1, -1))
    ours = m.compute()
    ref = sklearn_reference(s, y)
    for k in ('auroc', 'ap', 'fpr95'):
        assert abs(ours[k] - ref[k]) <= 1e-3, (k, ours[k], ref[k])


def test_streaming_in_batches_equals_one_batch_and_merge_equals_one_worker():
    s, y = DISTS['gaussian']
    one = StreamingOODMetric().update(s, y)
    many = StreamingOODMetric()
    for a, b in zip(np.array_split(s, 13), np.array_split(y, 13)):
        many.update(a, b)
    assert np.array_equal(one.counts, many.counts)
    w1, w2 = StreamingOODMetric(), StreamingOODMetric()
    w1.update(s[:20000], y[:20000])
    w2.update(s[20000:], y[20000:])
    assert w1.merge(w2).compute() == one.compute()
    w3 = StreamingOODMetric().load_state_dict(one.state_dict())
    assert np.array_equal(w3.counts, one.counts)


def test_void_pixels_are_excluded_and_tensors_accepted():
    s, y = DISTS['gaussian']
    y_void = y.copy()
    y_void[::7] = 255
    keep = y_void != 255
    ref = sklearn_reference(s[keep], y[keep])
    ours = pixel_ood_metrics(torch.from_numpy(s), torch.from_numpy(y_void))
    assert ours['auroc'] == pytest.approx(ref['auroc'], abs=1e-9)
    m = StreamingOODMetric().update(torch.from_numpy(s).float(),
                                    torch.from_numpy(y_void))
    assert m.compute()['num_id'] + m.compute()['num_ood'] == keep.sum()


def test_hand_worked_example():
    # scores  0.9 0.8 0.7 0.6 0.5 ; labels 1 0 1 0 0
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    y = np.array([1, 0, 1, 0, 0])
    r = pixel_ood_metrics(s, y)
    # pairs (ood > id): 0.9 beats all 3, 0.7 beats 2 -> 5 / 6
    assert r['auroc'] == pytest.approx(5 / 6)
    # AP = 0.5 * 1 + 0.5 * 2/3
    assert r['ap'] == pytest.approx(0.5 + 1 / 3)
    # TPR reaches 1 (>= 0.95) first at 0.7 where FPR = 1/3
    assert r['fpr95'] == pytest.approx(1 / 3)
    # best F1: at 0.7, TP=2 FP=1 FN=0 -> 4/5
    assert r['best_f1'] == pytest.approx(0.8)
    assert r['best_f1_threshold'] == pytest.approx(0.7)


@pytest.mark.parametrize('labels, missing', [
    (np.zeros(10, np.uint8), 'no OOD'),
    (np.ones(10, np.uint8), 'no ID'),
    (np.full(10, 255, np.uint8), 'no OOD'),
])
def test_undefined_metrics_warn_and_give_nan(labels, missing):
    s = np.linspace(0, 1, 10)
    with pytest.warns(UndefinedMetricWarning, match=missing):
        r = pixel_ood_metrics(s, labels, name='energy')
    assert np.isnan(r['auroc']) and np.isnan(r['ap'])
    with pytest.warns(UndefinedMetricWarning, match=missing):
        r = StreamingOODMetric(name='energy').update(s, labels).compute()
    assert np.isnan(r['fpr95'])


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_scores_name_the_scorer(bad):
    s = np.linspace(0, 1, 10)
    s[3] = bad
    y = np.array([0, 1] * 5)
    with pytest.raises(ValueError, match="scorer 'n_energy'.*NaN/Inf"):
        pixel_ood_metrics(s, y, name='n_energy')
    with pytest.raises(ValueError, match="scorer 'n_energy'"):
        StreamingOODMetric(name='n_energy').update(s, y)
    y[3] = 255  # non-finite on a void pixel is ignored
    pixel_ood_metrics(s, y)


def test_bad_labels_and_shapes():
    with pytest.raises(ValueError, match=r'found \[2\]'):
        pixel_ood_metrics(np.zeros(4), np.array([0, 1, 2, 255]))
    with pytest.raises(ValueError, match='same shape'):
        StreamingOODMetric().update(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match='bits'):
        StreamingOODMetric(bits=30)
    with pytest.raises(ValueError, match='tpr_points'):
        StreamingOODMetric(tpr_points=(1.5, ))


def test_fpr_at_chosen_tpr_points():
    s, y = DISTS['gaussian']
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    r = pixel_ood_metrics(s, y, tpr_points=(0.5, 0.8))
    for p in (0.5, 0.8, 0.95):
        i = np.searchsorted(tpr, p)
        assert r[f'fpr@tpr{p:g}'] == pytest.approx(fpr[i], abs=1e-12)
        assert r[f'threshold@tpr{p:g}'] == pytest.approx(thr[i])


def test_clusters_are_refined_to_float32_resolution():
    s, y = DISTS['tight_cluster']
    coarse = StreamingOODMetric(max_refined=0).update(s, y).compute()
    fine = StreamingOODMetric().update(s, y).compute()
    ref = sklearn_reference(s, y)
    assert abs(coarse['auroc'] - ref['auroc']) > 0.1   # one bin: all ties
    assert abs(fine['auroc'] - ref['auroc']) < 1e-6
    # later images inside the refined bins are counted at full resolution
    # only: the same counts as one update
    many = StreamingOODMetric()
    for a, b in zip(np.array_split(s, 9), np.array_split(y, 9)):
        many.update(a, b)
    assert many.compute() == fine and many.nbytes == \
        StreamingOODMetric().update(s, y).nbytes
    # merging a refined and an unrefined accumulator refines the bin
    a = StreamingOODMetric().update(s[:30000], y[:30000])
    b = StreamingOODMetric(max_refined=0).update(s[30000:], y[30000:])
    merged = a.merge(b)
    assert merged.refined and merged.compute()['num_id'] == (y == 0).sum()


def test_accumulator_memory_is_independent_of_pixels_and_bounded():
    m = StreamingOODMetric()
    assert m.nbytes == 0  # pages are allocated where scores fall
    rng = np.random.default_rng(0)
    s = rng.normal(size=200000).astype(np.float32)
    y = rng.integers(0, 2, 200000)
    m.update(s, y)
    one = m.nbytes
    for _ in range(5):  # the same values again: more pixels, no more memory
        m.update(rng.permutation(s), y)
    assert m.nbytes == one < 2 * 2**20  # 40 binades of N(0, 1)
    # worst case: every binade of both signs (all pages) and more clusters
    # than max_refined: 512 pages of 2 x 2^11 and 256 sub-histograms of
    # 2 x 2^12 int64 counts, 32 MiB
    every = np.ldexp(1.0, np.arange(-149, 128)).astype(np.float32)
    wide = StreamingOODMetric()
    wide.update(np.r_[every, -every, 0.0], np.zeros(2 * every.size + 1))
    for i in range(4):
        clusters = np.repeat(np.arange(90) + 100.0 * i + 1, 1000)
        wide.update(clusters, np.arange(clusters.size) % 2)
    assert len(wide.refined) == wide.max_refined == 256
    assert len(wide._pages) <= 512
    assert wide.nbytes <= 32 * 2**20


def test_images_larger_than_a_chunk_and_wide_ranges():
    """Updates work through pixels in chunks; the counts do not depend on
    how the pixels arrive, and clusters are refined across chunks."""
    rng = np.random.default_rng(1)
    n = 300000  # several chunks of 2^16 pixels
    y = (rng.random(n) < 0.1).astype(np.uint8)
    s = np.where(rng.random(n) < 0.5, 0.8333 + 1e-6 * (rng.normal(0, 2, n)
                                                       + 2 * y),
                 rng.normal(0, 1, n) + y).astype(np.float32)
    one = StreamingOODMetric(max_refined=0).update(s, y)
    many = StreamingOODMetric(max_refined=0)
    for a, b in zip(np.array_split(s, 37), np.array_split(y, 37)):
        many.update(a, b)
    assert np.array_equal(one.counts, many.counts)
    ref = sklearn_reference(s, y)
    fine = StreamingOODMetric().update(s, y).compute()
    for k in ('auroc', 'ap', 'fpr95'):
        assert abs(fine[k] - ref[k]) <= 1e-4, k
    # energies over ~2^19 bins: the chunks grow with the span
    wide = np.exp(rng.normal(0, 8, n)) * np.where(y, 1, -1)
    m = StreamingOODMetric().update(wide, y)
    assert m.compute()['auroc'] == pytest.approx(roc_auc_score(y, wide),
                                                 abs=1e-6)


def test_update_valid_skips_void_label_and_equals_update():
    s, y = DISTS['heavy_ties']
    y_void = y.copy()
    y_void[::5] = 255
    s_void = s.copy()
    s_void[::5] = np.inf  # non-finite scores on void pixels are ignored
    ref = StreamingOODMetric().update(s[y_void != 255], y[y_void != 255])
    a = StreamingOODMetric().update(s_void, y_void)
    y2 = np.where(y_void == 255, 2, y_void).astype(np.uint8)
    b = StreamingOODMetric().update_valid(s, y2)
    assert a.compute() == ref.compute() == b.compute()
    assert np.array_equal(a.counts, ref.counts)
