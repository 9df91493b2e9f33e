"""Pixel-level OOD metrics against scikit-learn."""
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from mmseg_ood.evaluation import (PixelOODAccumulator, UndefinedMetricWarning,
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
    m = PixelOODAccumulator(name=name)
    for a, b in zip(np.array_split(s, 9), np.array_split(y, 9)):
        m.update(a.reshape(1, -1), b.reshape(1, -1))
    ours = m.compute()
    ref = sklearn_reference(s, y)
    for k in ('auroc', 'ap', 'fpr95'):
        assert abs(ours[k] - ref[k]) <= 1e-3, (k, ours[k], ref[k])


def test_streaming_in_batches_equals_one_batch_and_merge_equals_one_worker():
    s, y = DISTS['gaussian']
    one = PixelOODAccumulator().update(s, y)
    many = PixelOODAccumulator()
    for a, b in zip(np.array_split(s, 13), np.array_split(y, 13)):
        many.update(a, b)
    assert np.array_equal(one.counts, many.counts)
    w1, w2 = PixelOODAccumulator(), PixelOODAccumulator()
    w1.update(s[:20000], y[:20000])
    w2.update(s[20000:], y[20000:])
    assert w1.merge(w2).compute() == one.compute()
    w3 = PixelOODAccumulator().load_state_dict(one.state_dict())
    assert np.array_equal(w3.counts, one.counts)


def test_void_pixels_are_excluded_and_tensors_accepted():
    s, y = DISTS['gaussian']
    y_void = y.copy()
    y_void[::7] = 255
    keep = y_void != 255
    ref = sklearn_reference(s[keep], y[keep])
    ours = pixel_ood_metrics(torch.from_numpy(s), torch.from_numpy(y_void))
    assert ours['auroc'] == pytest.approx(ref['auroc'], abs=1e-9)
    m = PixelOODAccumulator().update(torch.from_numpy(s).float(),
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
        r = PixelOODAccumulator(name='energy').update(s, labels).compute()
    assert np.isnan(r['fpr95'])


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_scores_name_the_scorer(bad):
    s = np.linspace(0, 1, 10)
    s[3] = bad
    y = np.array([0, 1] * 5)
    with pytest.raises(ValueError, match="scorer 'n_energy'.*NaN/Inf"):
        pixel_ood_metrics(s, y, name='n_energy')
    with pytest.raises(ValueError, match="scorer 'n_energy'"):
        PixelOODAccumulator(name='n_energy').update(s, y)
    y[3] = 255  # non-finite on a void pixel is ignored
    pixel_ood_metrics(s, y)


def test_bad_labels_and_shapes():
    with pytest.raises(ValueError, match=r'found \[2\]'):
        pixel_ood_metrics(np.zeros(4), np.array([0, 1, 2, 255]))
    with pytest.raises(ValueError, match='same shape'):
        PixelOODAccumulator().update(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match='bits'):
        PixelOODAccumulator(bits=30)
    with pytest.raises(ValueError, match='tpr_points'):
        PixelOODAccumulator(tpr_points=(1.5, ))
    with pytest.raises(ValueError, match='labels must be 0, 1 or 2'):
        PixelOODAccumulator().update_valid(np.zeros(3), np.array([0, 1, 3]))
    # merged states must share the parameters that decide refinement
    for kw in (dict(bits=16), dict(max_refined=3),
               dict(refine_fraction=0.05)):
        with pytest.raises(ValueError, match=next(iter(kw))):
            PixelOODAccumulator().merge(PixelOODAccumulator(**kw))


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
    coarse = PixelOODAccumulator(max_refined=0).update(s, y).compute()
    fine = PixelOODAccumulator().update(s, y).compute()
    ref = sklearn_reference(s, y)
    assert abs(coarse['auroc'] - ref['auroc']) > 0.1   # one bin: all ties
    assert abs(fine['auroc'] - ref['auroc']) < 1e-6
    # later images whose pixels are heavy in the refined bins are counted
    # at full resolution only: the same counts as one update
    many = PixelOODAccumulator()
    for a, b in zip(np.array_split(s, 9), np.array_split(y, 9)):
        many.update(a, b)
    assert many.compute() == fine and many.nbytes == \
        PixelOODAccumulator().update(s, y).nbytes
    assert not many.counts.any()  # nothing counted coarsely
    # merged halves give the same
    a, b = PixelOODAccumulator(), PixelOODAccumulator()
    for i, (u, v) in enumerate(zip(np.array_split(s, 9),
                                   np.array_split(y, 9))):
        (a if i < 4 else b).update(u, v)
    assert a.merge(b).compute() == fine


def test_refinement_is_per_update():
    """A bin's pixels are counted finely in the updates where the bin is
    heavy (>= refine_fraction of the update's valid pixels), coarsely in
    the others, whether or not the bin is refined already."""
    rng = np.random.default_rng(3)
    cluster = np.float32(0.8333) + np.float32(1e-6) * rng.normal(size=5000)
    heavy = (cluster.astype(np.float64), rng.integers(0, 2, 5000))
    spread = rng.normal(size=20000) - 3  # away from the cluster
    light = (np.r_[spread, cluster[:100]],  # 0.5 %: not heavy
             rng.integers(0, 2, 20100))
    m = PixelOODAccumulator().update(*heavy)
    (b, fine), = m.refined.items()
    m.update(*light)
    assert np.array_equal(m.refined[b], fine)  # light: no fine counts
    in_bin = PixelOODAccumulator(max_refined=0).update(cluster[:100],
                                                      light[1][-100:])
    assert np.array_equal(m.counts[:, b], in_bin.counts[:, b])
    assert m.counts[:, b].sum() == 100
    # the light update first: the same state (refinement is order-free)
    other = PixelOODAccumulator().update(*light).update(*heavy)
    assert_same_state(m, other)
    assert m.compute() == other.compute()
    # at compute, the bin's coarse pixels join its most frequent exact
    # value: the values and counts of the heavy update alone, plus 100 there
    v1, p1, n1 = PixelOODAccumulator().update(*heavy)._distinct()
    v2, p2, n2 = m._distinct()
    sel = np.isin(v2, v1)
    assert np.array_equal(v2[sel], v1)
    extra = (p2[sel] + n2[sel]) - (p1 + n1)
    assert extra.sum() == 100
    assert np.flatnonzero(extra).tolist() == [np.argmax(p1 + n1)]


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and sa['bits'] == sb['bits']
    for k in ('index', 'count'):
        assert np.array_equal(sa[k], sb[k]), k
    assert list(sa['refined']) == list(sb['refined'])
    for k, (i, c) in sa['refined'].items():
        assert np.array_equal(i, sb['refined'][k][0])
        assert np.array_equal(c, sb['refined'][k][1])


def stream_of_images(kind, seed=0):
    """A list of updates (scores, labels) of one kind, 30 images."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(30):
        n = int(rng.integers(2000, 6000))
        y = (rng.random(n) < 0.2).astype(np.uint8)
        if kind == 'gaussian':
            s = rng.normal(size=n) + y
        elif kind == 'heavy_ties':
            s = np.round(rng.normal(size=n) + y, 1)
        elif kind == 'tight_cluster':
            s = (0.8333 + 1e-6 * (rng.normal(0, 2, n) + 2 * y)).astype(
                np.float32)
        elif kind == 'sometimes_heavy':
            # a cluster heavy in even images, light (0.3 %) in odd ones:
            # which of its pixels are counted finely must not depend on the
            # order of the images or on the worker that saw them
            s = rng.normal(size=n) + y
            k = n // 2 if i % 2 == 0 else n * 3 // 1000
            s[:k] = (0.8333 + 1e-6 * rng.normal(size=k) + 2e-6 * y[:k])
        elif kind == 'many_clusters':
            # 8 clusters, 3 to 5 heavy per image: more than max_refined=3
            s = rng.normal(size=n) * 10
            centers = 1.0 + np.arange(8) * 0.5
            for c in rng.choice(8, int(rng.integers(3, 6)), replace=False):
                k = n // 10 if rng.random() < 0.7 else n // 300
                at = rng.choice(n, k, replace=False)
                s[at] = centers[c] + 1e-6 * rng.normal(size=k) + 1e-6 * y[at]
        s = s.astype(np.float64)
        if i % 7 == 3:  # some void pixels
            y = y.copy()
            y[::11] = 255
        images.append((s, y))
    return images


ORDER_CASES = [('gaussian', 256), ('heavy_ties', 256),
               ('tight_cluster', 256), ('sometimes_heavy', 256),
               ('many_clusters', 3), ('heavy_ties', 3)]


@pytest.mark.parametrize('kind, max_refined', ORDER_CASES)
def test_bit_identical_for_any_order_and_any_merge(kind, max_refined):
    """Shuffled updates, updates spread over 2 or 3 workers merged in any
    order, and state round trips all give the same state and results."""
    images = stream_of_images(kind)

    def run(order):
        m = PixelOODAccumulator(max_refined=max_refined)
        for i in order:
            m.update(*images[i])
        return m

    ref = run(range(len(images)))
    expected = ref.compute()
    if kind != 'gaussian':
        assert ref.refined and len(ref.refined) <= max_refined
    rng = np.random.default_rng(1)
    for _ in range(3):
        other = run(rng.permutation(len(images)))
        assert other.compute() == expected
        assert_same_state(other, ref)
    for workers in (2, 3, 3):
        owner = rng.integers(0, workers, len(images))
        parts = [run(rng.permutation(np.flatnonzero(owner == w)))
                 for w in range(workers)]
        for order in (range(workers), rng.permutation(workers)):
            merged = PixelOODAccumulator(max_refined=max_refined)
            for w in order:  # as merge_across_ranks: states into a new one
                merged.load_state_dict(parts[w].state_dict())
            assert merged.compute() == expected
            assert_same_state(merged, ref)
        # merge() into a worker that saw updates
        first, *rest = rng.permutation(workers)
        merged = run(np.flatnonzero(owner == first))
        for w in rest:
            merged.merge(parts[w])
        assert merged.compute() == expected
        assert_same_state(merged, ref)
    # the even and the odd images on two workers (a distributed run)
    even, odd = run(range(0, 30, 2)), run(range(1, 30, 2))
    assert even.merge(odd).compute() == expected
    copy = PixelOODAccumulator(max_refined=max_refined).load_state_dict(
        ref.state_dict())
    assert copy.compute() == expected
    assert_same_state(copy, ref)


def test_kept_sub_histograms_are_the_smallest_heavy_bins():
    images = stream_of_images('many_clusters')
    heavy = set()
    for s, y in images:  # the bins heavy in each image on its own
        heavy |= set(PixelOODAccumulator().update(s, y).refined)
    m = PixelOODAccumulator(max_refined=3)
    for s, y in images[::-1]:
        m.update(s, y)
    assert set(m.refined) == set(sorted(heavy)[:3]) and len(heavy) > 3
    # evicted bins' counts are kept coarsely: no pixel is lost
    r = m.compute()
    n_valid = sum(int((y != 255).sum()) for _, y in images)
    assert r['num_id'] + r['num_ood'] == n_valid


def test_accumulator_memory_is_independent_of_pixels_and_bounded():
    m = PixelOODAccumulator()
    assert m.nbytes == 0  # pages are allocated where scores fall
    rng = np.random.default_rng(0)
    s = rng.normal(size=200000).astype(np.float32)
    y = rng.integers(0, 2, 200000)
    m.update(s, y)
    one = m.nbytes
    for _ in range(5):  # the same values again: more pixels, no more memory
        m.update(rng.permutation(s), y)
    assert m.nbytes == one < 2 * 2**20  # 40 binades of N(0, 1)
    # worst case: every binade of both signs (all pages) and more heavy
    # bins than max_refined: at most 512 pages of 2 x 2^11 int64 counts
    # (2^(bits + 4) bytes) and 256 sub-histograms of 2 x 2^12 (2^(36 - bits)
    # bytes each): 16 + 16 = 32 MiB at bits=20
    every = np.ldexp(1.0, np.arange(-149, 128)).astype(np.float32)
    updates = [(np.r_[every, -every, 0.0], np.zeros(2 * every.size + 1))]
    for i in (3, 1, 2, 0):  # 4 x 90 heavy bins, the largest first
        clusters = np.repeat(np.arange(90) + 100.0 * i + 1, 1000)
        updates.append((clusters, np.arange(clusters.size) % 2))
    wide, heavy = PixelOODAccumulator(), set()
    for s, y in updates:
        wide.update(s, y)
        heavy |= set(PixelOODAccumulator(max_refined=999).update(s, y).refined)
    # the sub-histograms of the 256 smallest heavy bins are kept
    assert len(wide.refined) == wide.max_refined == 256 < len(heavy)
    assert sorted(wide.refined) == sorted(heavy)[:256]
    assert len(wide._pages) <= 512
    assert wide.nbytes <= 32 * 2**20


def test_images_larger_than_a_chunk_and_wide_ranges():
    """Updates work through pixels in chunks; the counts do not depend on
    how the pixels arrive, and clusters are refined across chunks."""
    rng = np.random.default_rng(1)
    n = 300000  # several chunks of 2^17 pixels
    y = (rng.random(n) < 0.1).astype(np.uint8)
    s = np.where(rng.random(n) < 0.5, 0.8333 + 1e-6 * (rng.normal(0, 2, n)
                                                       + 2 * y),
                 rng.normal(0, 1, n) + y).astype(np.float32)
    one = PixelOODAccumulator(max_refined=0).update(s, y)
    many = PixelOODAccumulator(max_refined=0)
    for a, b in zip(np.array_split(s, 37), np.array_split(y, 37)):
        many.update(a, b)
    assert np.array_equal(one.counts, many.counts)
    ref = sklearn_reference(s, y)
    fine = PixelOODAccumulator().update(s, y).compute()
    for k in ('auroc', 'ap', 'fpr95'):
        assert abs(fine[k] - ref[k]) <= 1e-4, k
    # energies over ~2^19 bins: the chunks grow with the span
    wide = np.exp(rng.normal(0, 8, n)) * np.where(y, 1, -1)
    m = PixelOODAccumulator().update(wide, y)
    assert m.compute()['auroc'] == pytest.approx(roc_auc_score(y, wide),
                                                 abs=1e-6)


def test_update_valid_skips_void_label_and_equals_update():
    s, y = DISTS['heavy_ties']
    y_void = y.copy()
    y_void[::5] = 255
    s_void = s.copy()
    s_void[::5] = np.inf  # non-finite scores on void pixels are ignored
    ref = PixelOODAccumulator().update(s[y_void != 255], y[y_void != 255])
    a = PixelOODAccumulator().update(s_void, y_void)
    y2 = np.where(y_void == 255, 2, y_void).astype(np.uint8)
    b = PixelOODAccumulator().update_valid(s, y2)
    assert a.compute() == ref.compute() == b.compute()
    assert np.array_equal(a.counts, ref.counts)


def reference_counts(images, bits=20):
    """The coarse histogram from its definition: each non-void pixel
    counted at the top `bits` bits of the order key of its float32 score
    (-0.0 is +0.0), [ID, OOD]; independent of how an update finds the
    columns."""
    counts = np.zeros((2, 1 << bits), np.int64)
    for s, y in images:
        s, y = np.asarray(s).ravel(), np.asarray(y).ravel()
        keep = y != 255
        f = s[keep].astype(np.float32) + np.float32(0.0)
        b = f.view(np.uint32)
        key = np.where(b >> 31 == 1, ~b, b | np.uint32(0x80000000))
        np.add.at(counts, (y[keep].astype(np.intp),
                           (key >> np.uint32(32 - bits)).astype(np.intp)), 1)
    return counts


def layout_cases():
    """Streams that take each way of laying out an update's histogram:
    scores of one sign over a few binades (dense), of both signs with the
    small magnitudes between them rare (a gap of unused binades), over the
    whole float range (compact), with rare exact zeros of both signs among
    float32 scores of both signs (keyed in place, -0.0 corrected in the
    overflow page), and float64 scores that round to -0.0."""
    rng = np.random.default_rng(5)
    cases = {}

    def labels(n):
        y = (rng.random(n) < 0.1).astype(np.uint8)
        y[rng.random(n) < 0.1] = 255
        return y

    n = 70000  # a bit more than one chunk
    cases['one_sign'] = [(rng.random(n).astype(np.float32) + 0.5, labels(n))
                         for _ in range(3)]
    cases['both_signs'] = [(rng.normal(0, 2, n).astype(np.float32),
                            labels(n)) for _ in range(4)]
    cases['whole_range'] = [
        ((np.exp(rng.normal(0, 20, n)) * rng.choice([-1, 1], n)).astype(
            np.float32), labels(n)) for _ in range(3)]
    zeros = []
    for _ in range(3):
        s = rng.normal(0, 2, n).astype(np.float32)
        at = rng.choice(n, 40, replace=False)
        s[at[:20]], s[at[20:]] = np.float32(-0.0), np.float32(0.0)
        zeros.append((s, labels(n)))
    cases['rare_zeros'] = zeros
    tiny = rng.normal(0, 1, n)
    tiny[:50] = -1e-60  # float32: -0.0, which ties with 0.0
    tiny[50:100] = 0.0
    cases['float64_to_minus_zero'] = [(tiny, labels(n))]
    return cases


@pytest.mark.parametrize('case', sorted(layout_cases()))
def test_coarse_counts_are_the_definition_in_every_layout(case):
    images = layout_cases()[case]
    m = PixelOODAccumulator(max_refined=0)
    for s, y in images:
        m.update(s, y)
    ref = reference_counts(images)
    assert np.array_equal(m.counts, ref)
    if case in ('rare_zeros', 'float64_to_minus_zero'):
        zero = 1 << 19  # +0.0's bin at bits=20
        zeros = sum(int(np.sum((np.asarray(s, np.float32) == 0) & (y != 255)))
                    for s, y in images)
        assert ref[:, zero].sum() == zeros > 50
        assert ref[:, zero - 1].sum() == 0  # no -0.0 bin
    # refined (the default): the same pixels, at full resolution where
    # heavy; the metrics equal the exact ones on the float32 scores
    full = PixelOODAccumulator()
    for s, y in images:
        full.update(s, y)
    s = np.concatenate([np.asarray(a, np.float32).ravel() for a, _ in images])
    y = np.concatenate([b.ravel() for _, b in images])
    exact = pixel_ood_metrics(s, y)
    got = full.compute()
    assert got['num_ood'] == exact['num_ood']
    assert got['num_id'] == exact['num_id']
    assert abs(got['auroc'] - exact['auroc']) < 1e-4
