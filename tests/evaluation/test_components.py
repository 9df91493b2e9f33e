"""SMIYC component metrics on a hand-worked example."""
import numpy as np
import pytest

from mmseg_ood.errors import OODNotice
from mmseg_ood.evaluation import (DEFAULT_TAUS, ComponentAccumulator,
                                  image_component_stats)
from mmseg_ood.evaluation.accumulators.components import GroundTruthComponents


def example():
    lab = np.zeros((10, 12), np.uint8)
    lab[1:4, 1:4] = 1          # GT A: 9 px
    lab[1:3, 6:8] = 1          # GT B: 4 px
    lab[9, :] = 255            # void row
    score = np.zeros(lab.shape)
    score[1:4, 2:8] = 1.0      # P1: 18 px, 6 on A, 4 on B, 8 on ID
    score[7:9, 9:11] = 1.0     # P2: 4 px on ID only
    score[9, 0:4] = 1.0        # on void: ignored
    return score, lab


def test_hand_worked_siou_ppv_f1():
    score, lab = example()
    st = image_component_stats(score, lab, 0.5, min_pred_size=0,
                               min_gt_size=0)
    # sIoU(A) = 6 / (18 + 9 - 6 - |P1 ∩ B| = 4) ; sIoU(B) = 4 / (18+4-4-6)
    np.testing.assert_allclose(sorted(st['siou']), sorted([6 / 17, 1 / 3]))
    np.testing.assert_allclose(sorted(st['ppv']), [0.0, 10 / 18])
    acc = ComponentAccumulator(0.5, min_pred_size=0, min_gt_size=0)
    r = acc.update(score, lab).compute()
    assert r['siou'] == pytest.approx((6 / 17 + 1 / 3) / 2)
    assert r['ppv'] == pytest.approx(5 / 18)
    assert r['f1@0.25'] == pytest.approx(0.8)       # TP 2, FN 0, FP 1
    assert r['f1@0.35'] == pytest.approx(0.5)       # TP 1, FN 1, FP 1
    assert r['f1@0.5'] == 0.0
    assert r['mean_f1'] == pytest.approx((0.8 + 0.8 + 0.5) / 11)
    assert r['num_gt_components'] == 2 and r['num_pred_components'] == 2


def test_size_filters():
    score, lab = example()
    # B (4 px) becomes void: P1 counts 14 px inside the region of interest
    st = image_component_stats(score, lab, 0.5, min_pred_size=0,
                               min_gt_size=5)
    np.testing.assert_allclose(st['siou'], [6 / 17])
    np.testing.assert_allclose(sorted(st['ppv']), [0.0, 6 / 14])
    # P2 (4 px) is removed: no false positive left
    st = image_component_stats(score, lab, 0.5, min_pred_size=5,
                               min_gt_size=0)
    np.testing.assert_allclose(st['ppv'], [10 / 18])
    assert st['fp'][0] == 0
    acc = ComponentAccumulator(0.5, preset='obstacle_track')
    assert (acc.min_pred_size, acc.min_gt_size) == (50, 10)


def test_eight_connectivity_and_threshold_inclusive():
    lab = np.zeros((6, 6), np.uint8)
    lab[1, 1] = lab[2, 2] = 1          # diagonal neighbours: one component
    score = np.where(lab == 1, 0.5, 0.0)
    st = image_component_stats(score, lab, 0.5, 0, 0)  # >= threshold
    assert st['siou'].tolist() == [1.0] and st['ppv'].tolist() == [1.0]


def test_streaming_and_merge_equal_one_pass():
    score, lab = example()
    one = ComponentAccumulator(0.5, 0, 0)
    for _ in range(3):
        one.update(score, lab)
    a, b = ComponentAccumulator(0.5, 0, 0), ComponentAccumulator(0.5, 0, 0)
    a.update(score, lab)
    b.update(score, lab).update(score, lab)
    assert a.merge(b).compute() == one.compute()


def test_merge_is_bit_identical_for_any_split_and_order():
    """The sIoU / PPV means are exact sums rounded once: the same float for
    any order of the images and any split across accumulators."""
    rng = np.random.default_rng(3)
    images = []
    for _ in range(12):
        lab = np.zeros((40, 40), np.uint8)
        for _ in range(3):
            y, x = rng.integers(0, 32, 2)
            lab[y:y + rng.integers(3, 9), x:x + rng.integers(3, 9)] = 1
        images.append((rng.random((40, 40)) * 0.6 + 0.5 * lab, lab))

    def run(order, parts):
        accs = [ComponentAccumulator(0.55, 0, 0) for _ in range(parts)]
        for k, i in enumerate(order):
            accs[k % parts].update(*images[i])
        out = accs[-1].empty_like()
        for acc in reversed(accs):
            out.load_state_dict(acc.state_dict())
        return out.compute()

    ref = run(range(12), 1)
    assert 0 < ref['siou'] < 1 and 0 < ref['ppv'] < 1
    for seed, parts in ((0, 1), (1, 2), (2, 3), (3, 5)):
        order = np.random.default_rng(seed).permutation(12)
        assert run(order, parts) == ref
    # and it is the correctly rounded mean of the per-component values
    from fractions import Fraction
    siou = [v for s, y in images
            for v in image_component_stats(s, y, 0.55, 0, 0)['siou']]
    assert ref['siou'] == float(sum(map(Fraction, siou)) / len(siou))


def test_image_without_gt_only_adds_false_positives():
    score, lab = example()
    lab[lab == 1] = 0
    st = image_component_stats(score, lab, 0.5, 0, 0)
    assert st['siou'].size == 0
    assert st['fp'].tolist() == [2] * len(DEFAULT_TAUS)
    with pytest.warns(OODNotice, match='no ground-truth'):
        r = ComponentAccumulator(0.5, 0, 0).update(score, lab).compute()
    assert np.isnan(r['siou']) and r['mean_f1'] == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match='preset'):
        ComponentAccumulator(0.5, preset='lost_and_found')
    with pytest.raises(ValueError, match='min_pred_size'):
        ComponentAccumulator(0.5, min_pred_size=-1)
    with pytest.raises(ValueError, match='threshold'):
        ComponentAccumulator(float('nan'))
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        image_component_stats(np.zeros((2, 3)), np.zeros((3, 2)), 0.5)


def reference_stats(score, lab, threshold, min_pred_size, min_gt_size):
    """The module docstring, literally: masks per component, no tables."""
    from scipy import ndimage
    eight = np.ones((3, 3), bool)
    void = lab == 255
    pred_cc, n_pred = ndimage.label((score >= threshold) & ~void, eight)
    gt_cc, n_gt = ndimage.label(lab == 1, eight)
    for j in range(1, n_pred + 1):
        if (pred_cc == j).sum() < min_pred_size:
            pred_cc[pred_cc == j] = 0
    for i in range(1, n_gt + 1):
        if (gt_cc == i).sum() < min_gt_size:
            void |= gt_cc == i
            gt_cc[gt_cc == i] = 0
    roi = ~void
    gts = [gt_cc == i for i in range(1, n_gt + 1) if (gt_cc == i).any()]
    preds = [(pred_cc == j) & roi for j in range(1, n_pred + 1)
             if ((pred_cc == j) & roi).any()]
    siou = []
    for k in gts:
        hit = [p for p in preds if (p & k).any()]
        union = np.any(hit, axis=0) if hit else np.zeros_like(k)
        others = np.any([g for g in gts if g is not k] or [np.zeros_like(k)],
                        axis=0)
        denom = ((k | union) & ~others).sum()
        siou.append((k & union).sum() / denom if hit else 0.0)
    any_gt = np.any(gts or [np.zeros_like(roi)], axis=0)
    ppv = [(p & any_gt).sum() / p.sum() for p in preds]
    return np.array(siou), np.array(ppv)


def test_random_images_equal_the_literal_definition():
    from scipy import ndimage
    rng = np.random.default_rng(0)
    for trial in range(40):
        h, w = rng.integers(8, 40, 2)
        blob = ndimage.gaussian_filter(rng.random((h, w)), 1.5)
        lab = np.where(blob > np.quantile(blob, 0.8), 1, 0).astype(np.uint8)
        lab[rng.random((h, w)) < 0.1] = 255
        score = ndimage.gaussian_filter(rng.random((h, w)), 1.0) + \
            0.2 * (lab == 1)
        t = float(np.quantile(score, 0.7))
        mp, mg = int(rng.integers(0, 8)), int(rng.integers(0, 8))
        st = image_component_stats(score, lab, t, mp, mg)
        siou, ppv = reference_stats(score, lab, t, mp, mg)
        # (components numbered in another order than scipy's)
        np.testing.assert_allclose(np.sort(st['siou']), np.sort(siou),
                                   err_msg=str(trial))
        np.testing.assert_allclose(np.sort(st['ppv']), np.sort(ppv),
                                   err_msg=str(trial))
        # the ground-truth side computed once serves every scorer
        gt = GroundTruthComponents(lab, mg)
        for s in (score, -score, rng.random((h, w))):
            a = image_component_stats(s, lab, t, mp, mg)
            b = image_component_stats(s, None, t, mp, mg, gt=gt)
            for k in a:
                assert np.array_equal(a[k], b[k]), k


def test_shared_ground_truth_must_match():
    score, lab = example()
    gt = GroundTruthComponents(lab, min_gt_size=5)
    with pytest.raises(ValueError, match='min_gt_size'):
        image_component_stats(score, None, 0.5, 0, 0, gt=gt)
    with pytest.raises(ValueError, match='shape'):
        image_component_stats(score[:, :5], None, 0.5, 0, 5, gt=gt)
    acc = ComponentAccumulator(0.5, min_pred_size=0, min_gt_size=5)
    assert acc.update(score, None, gt=gt).compute() == \
        ComponentAccumulator(0.5, 0, 5).update(score, lab).compute()
