"""SMIYC component metrics on a hand-worked example."""
import numpy as np
import pytest

from mmseg_ood.evaluation import (DEFAULT_TAUS, ComponentAccumulator,
                                  image_component_stats)


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


def test_image_without_gt_only_adds_false_positives():
    score, lab = example()
    lab[lab == 1] = 0
    st = image_component_stats(score, lab, 0.5, 0, 0)
    assert st['siou'].size == 0
    assert st['fp'].tolist() == [2] * len(DEFAULT_TAUS)
    with pytest.warns(UserWarning, match='no ground-truth'):
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
