"""Calibration (ECE, non-distinctiveness) and open-set mIoU."""
import math

import pytest
import torch

from mmseg.evaluation import IoUMetric
from mmseg_ood.evaluation import (ECEAccumulator, ECEMetric,
                                  OpenSetIoUMetric)


def random_probs(seed, c=4, h=8, w=9):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(c, h, w, generator=g) * 3
    label = torch.randint(0, c, (h, w), generator=g)
    label[0, :3] = 255
    return logits, label


def ece_by_loops(probs, labels, bins=15):
    conf, pred = probs.max(0)
    keep = labels != 255
    conf, pred = conf[keep].numpy(), pred[keep].numpy()
    y = labels[keep].numpy()
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        m = (conf >= lo) & ((conf < hi) if b < bins - 1 else (conf <= hi))
        if m.any():
            total += m.sum() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return total / float(keep.sum())


def test_ece_matches_a_direct_computation_and_streams():
    acc = ECEAccumulator(num_bins=15)
    all_p, all_y = [], []
    for seed in range(4):
        logits, label = random_probs(seed)
        p = logits.softmax(0)
        acc.update(p, label)
        all_p.append(p)
        all_y.append(label)
    ref = ece_by_loops(torch.cat(all_p, 2), torch.cat(all_y, 1))
    assert acc.compute()['ece'] == pytest.approx(ref, rel=1e-6)  # float32


def test_perfectly_calibrated_is_zero():
    # confidence 1 and always right
    p = torch.zeros(3, 4, 4)
    y = torch.randint(0, 3, (4, 4))
    p.scatter_(0, y[None], 1.0)
    assert ECEAccumulator().update(p, y).compute()['ece'] == 0.0


def test_non_distinctiveness_ibe_eq4_hand_worked():
    """IBE eq. 4 on one pixel, by hand: logits v = (v_BG, v_1, v_2) =
    (log 2, log 3, log 1), so softmax(v) = (2, 3, 1) / 6 and the foreground
    softmax softmax(v_ID) = (3, 1) / 4. mu_BG = 1/3, mu_ID = 3/4, mu_ND =
    1/4. The largest foreground entry of the *full* softmax (the quantity
    of results schema 1) is 1/2, giving 1/6 = mu_ND * (1 - p_BG)."""
    v = torch.tensor([2.0, 3.0, 1.0]).log().view(3, 1, 1)
    y = torch.zeros(1, 1, dtype=torch.long)
    for logits in (None, v):
        out = ECEAccumulator(background_index=0).update(
            v.softmax(0), y, logits=logits).compute()
        assert out['non_distinctiveness'] == pytest.approx(1 / 4)
        assert out['non_distinctiveness_full_softmax'] == pytest.approx(1 / 6)
    # another background index: the background is class 2 (mass 1/6),
    # the foreground softmax (2, 3) / 5
    out = ECEAccumulator(background_index=2).update(
        v.softmax(0), y).compute()
    assert out['non_distinctiveness'] == pytest.approx(1 / 6 * 3 / 5)


def test_non_distinctiveness_ibe_eq4():
    logits, label = random_probs(7)
    p = logits.softmax(0)
    acc = ECEAccumulator(background_index=0).update(p, label)
    keep = label != 255
    ref = (p[0] * logits[1:].softmax(0).max(0).values)[keep]
    assert acc.compute()['non_distinctiveness'] == pytest.approx(
        ref.double().mean().item(), rel=1e-6)


def test_non_distinctiveness_all_background_needs_logits():
    """Where p_BG rounds to 1 the foreground softmax is still defined from
    the logits (and eq. 4 gives mu_BG * mu_ID = 1 * max softmax(v_ID))."""
    v = torch.tensor([200.0, 0.0, -1.0]).view(3, 1, 1)
    y = torch.zeros(1, 1, dtype=torch.long)
    p = v.softmax(0)
    assert p[1:].sum() == 0
    out = ECEAccumulator(background_index=0).update(
        p, y, logits=v).compute()
    assert out['non_distinctiveness'] == pytest.approx(
        1 / (1 + math.exp(-1)))
    with pytest.raises(ValueError, match='pass the logits'):
        ECEAccumulator(background_index=0).update(p, y)


def test_calibration_metric_reads_samples():
    m = ECEMetric(background_index=0)
    logits, label = random_probs(3)
    m.process({}, [dict(seg_logits=dict(data=logits),
                        gt_sem_seg=dict(data=label[None]))])
    out = m.evaluate(1)
    ref = ECEAccumulator(background_index=0).update(
        logits.softmax(0), label).compute()
    assert out['calibration/ece'] == pytest.approx(ref['ece'])
    assert out['calibration/non_distinctiveness'] == pytest.approx(
        ref['non_distinctiveness'])


def test_calibration_bad_input():
    with pytest.raises(ValueError, match='num_bins'):
        ECEAccumulator(num_bins=0)
    with pytest.raises(ValueError, match=r'\(C, H, W\)'):
        ECEAccumulator().update(torch.rand(3, 4, 4),
                                        torch.zeros(5, 5))


def _samples():
    out = []
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        gt = torch.randint(0, 4, (1, 10, 12), generator=g)
        pred = torch.where(torch.rand(1, 10, 12, generator=g) < 0.7, gt,
                           torch.randint(0, 4, (1, 10, 12), generator=g))
        gt[0, 0] = 255
        score = torch.rand(10, 12, generator=g)
        out.append(dict(pred_sem_seg=dict(data=pred),
                        gt_sem_seg=dict(data=gt),
                        ood_scores=dict(entropy=score)))
    return out


def test_open_set_miou_without_threshold_equals_mmseg_iou_metric():
    meta = dict(classes=('a', 'b', 'c', 'd'))
    ours = OpenSetIoUMetric(thresholds=(None, 0.5, -1.0))
    ours.dataset_meta = meta
    ref = IoUMetric(iou_metrics=['mIoU'])
    ref.dataset_meta = meta
    for s in _samples():
        ours.process({}, [s])
        ref.process({}, [s])
    out = ours.evaluate(3)
    ref_out = ref.compute_metrics(ref.results)
    assert out['open_set/mIoU'] == pytest.approx(ref_out['mIoU'], abs=0.01)
    assert out['open_set/mIoU@t=0.5'] < out['open_set/mIoU']
    assert out['open_set/mIoU@t=-1'] == 0.0   # every pixel flagged OOD


def test_open_set_needs_the_scorer():
    m = OpenSetIoUMetric(scorer='n_energy')
    m.dataset_meta = dict(classes=('a', 'b'))
    with pytest.raises(KeyError, match='n_energy'):
        m.process({}, _samples()[:1])
