"""Parity of the package's OOD metrics with an independent reference.

The reference below is written from the published definitions of the
Segment-Me-If-You-Can benchmark (Chan et al., NeurIPS Datasets and
Benchmarks 2021; the component definitions as the benchmark's
``segment_metrics`` computes them), in plain numpy / scipy, for clarity, not
speed. It calls nothing of ``mmseg_ood``.
``docs/en/evaluation/smiyc_parity.md`` lists where the package
deliberately differs from the benchmark's code.

- Pixel metrics (OOD = positive; predict OOD where ``score >= t``, ``t``
  over the distinct scores, descending): AP = sum_n (R_n - R_{n-1}) P_n;
  FPR95 = the FPR at the first ``t`` where TPR >= 0.95; AUROC by
  Mann-Whitney (the share of (OOD, ID) pairs ordered right, ties 1/2).
- Component metrics: see :func:`ref_image_components`.
- The benchmark's own component threshold (``component_threshold='smiyc'``):
  its per-frame quantile bins, pooled curve and best-F1 pick, as its code
  computes them (:func:`ref_smiyc_frame`, :func:`ref_smiyc_threshold`,
  written again from a reading of that code), then ``score > t`` and its
  own tau values.

All scores lie on a grid of few mantissa bits (``k / 256``, ``k / 2048``),
so float32 holds them exactly and ``PixelOODAccumulator`` (``bits=20``: 12
significant bits) puts each distinct value in a bin of its own: the binned
metrics are then exact and compared at 1e-12 too.
"""
import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import (average_precision_score, roc_auc_score,
                             roc_curve)

from mmseg_ood.evaluation import (ComponentAccumulator, OODMetric,
                                  PixelOODAccumulator, SMIYCBinnedCurve)
from mmseg_ood.evaluation.accumulators import SMIYC_TAUS
from mmseg_ood.evaluation.functional.pixel_metrics import pixel_ood_metrics
from mmseg_ood.evaluation.functional.roc_pr import smiyc_frame_bins

TOL = 1e-12
VOID = 255
#: The SMIYC tau grid {0.25, 0.30, ..., 0.75} as decimals (k / 20 is the
#: float nearest to each decimal).
TAUS = [k / 20 for k in range(5, 16)]
EIGHT = np.ones((3, 3), int)                 # 8-connectivity
FOUR = ndimage.generate_binary_structure(2, 1)
H, W = 60, 80
SCORERS = ('tied', 'fine', 'energy')
PIXEL_KEYS = ('auroc', 'ap', 'fpr95', 'best_f1')


# --------------------------------------------------------------------------
# the reference
# --------------------------------------------------------------------------
def ref_pixel(scores, labels):
    """AUROC, AP, FPR95 and best F1 from the definitions, pooled."""
    s = np.concatenate([x.ravel() for x in scores]).astype(np.float64)
    y = np.concatenate([x.ravel() for x in labels])
    s, ood = s[y != VOID], y[y != VOID] == 1
    num_pos, num_neg = int(ood.sum()), int((~ood).sum())
    ap, recall_before, fpr95 = 0.0, 0.0, None
    best_f1, best_t = -1.0, None
    for t in np.unique(s)[::-1]:
        pred = s >= t
        tp = int(np.sum(pred & ood))
        fp = int(np.sum(pred & ~ood))
        recall, precision = tp / num_pos, tp / (tp + fp)
        ap += (recall - recall_before) * precision
        recall_before = recall
        if fpr95 is None and recall >= 0.95:
            fpr95 = fp / num_neg
        f1 = 2 * tp / (2 * tp + fp + (num_pos - tp))
        if f1 > best_f1:               # the first (highest) t of the best
            best_f1, best_t = f1, float(t)
    # Mann-Whitney: for each OOD score, the ID scores below it, + 1/2 tie
    neg = np.sort(s[~ood])
    below = np.searchsorted(neg, s[ood], side='left')
    ties = np.searchsorted(neg, s[ood], side='right') - below
    auroc = (below.sum() + 0.5 * ties.sum()) / (num_pos * num_neg)
    return dict(auroc=float(auroc), ap=ap, fpr95=fpr95, best_f1=best_f1,
                best_f1_threshold=best_t)


def ref_image_components(score, label, threshold, min_pred_size,
                         min_gt_size, strict=False, structure=EIGHT,
                         filter_after_void=False):
    """Per-component sIoU and PPV of one image.

    1. Predict OOD where ``score >= threshold`` (``>`` if ``strict``), not
       on void pixels; label the prediction and ``label == 1`` into
       connected components.
    2. Predicted components below ``min_pred_size`` pixels are removed;
       ground-truth components below ``min_gt_size`` become void (the
       predicted sizes are taken before that, as the benchmark's
       ``default_instancer`` does; ``filter_after_void`` takes them after).
    3. Within the non-void region, for a ground-truth component k:
       ``K`` = union of predicted components meeting k, ``A`` = the other
       ground-truth components, sIoU = |k & K| / |(k | K) - A|; for a
       predicted component p: PPV = |p & (GT components meeting p)| / |p|.

    Returns:
        dict: ``siou`` and ``ppv`` lists, and the number of predicted
        components removed and of ground-truth components made void.
    """
    roi = label != VOID
    pred = (score > threshold if strict else score >= threshold) & roi
    gt_cc, n_gt = ndimage.label(label == 1, structure=structure)
    pred_cc, n_pred = ndimage.label(pred, structure=structure)
    gts, voided = [], 0
    for i in range(1, n_gt + 1):
        comp = gt_cc == i
        if comp.sum() < min_gt_size:
            roi &= ~comp
            voided += 1
        else:
            gts.append(comp)
    preds, removed = [], 0
    for j in range(1, n_pred + 1):
        comp = pred_cc == j
        size = (comp & roi).sum() if filter_after_void else comp.sum()
        if size < min_pred_size:
            removed += 1
        elif (comp & roi).any():
            preds.append(comp & roi)
    siou = []
    for i, k in enumerate(gts):
        big_k = np.zeros_like(k)
        for p in preds:
            if (p & k).any():
                big_k |= p
        others = np.zeros_like(k)
        for j, g in enumerate(gts):
            if j != i:
                others |= g
        siou.append((k & big_k).sum() / ((k | big_k) & ~others).sum())
    ppv = []
    for p in preds:
        hit = np.zeros_like(p)
        for g in gts:
            if (g & p).any():
                hit |= g
        ppv.append((p & hit).sum() / p.sum())
    return dict(siou=siou, ppv=ppv, removed=removed, voided=voided)


def ref_components(scores, labels, threshold, min_pred_size, min_gt_size,
                   taus=TAUS, per_image=False, **kwargs):
    """sIoU, PPV (means over all components of all images: pooled) and
    F1(tau) = 2 TP / (2 TP + FN + FP) from TP, FN, FP summed over images,
    TP = #{k: sIoU >= tau}, FP = #{p: PPV < tau}; ``per_image`` averages
    each image's mean sIoU instead (not SMIYC: a foil)."""
    stats = [ref_image_components(s, y, threshold, min_pred_size,
                                  min_gt_size, **kwargs)
             for s, y in zip(scores, labels)]
    siou = [v for st in stats for v in st['siou']]
    ppv = [v for st in stats for v in st['ppv']]
    f1 = []
    for tau in taus:
        tp = sum(v >= tau for v in siou)
        fn = len(siou) - tp
        fp = sum(v < tau for v in ppv)
        f1.append(2 * tp / (2 * tp + fn + fp))
    if per_image:
        siou_mean = np.mean([np.mean(st['siou']) for st in stats
                             if st['siou']])
    else:
        siou_mean = np.mean(siou)
    return dict(siou=float(siou_mean), ppv=float(np.mean(ppv)), f1=f1,
                mean_f1=float(np.mean(f1)), num_gt_components=len(siou),
                num_pred_components=len(ppv),
                removed=sum(st['removed'] for st in stats),
                voided=sum(st['voided'] for st in stats))


# --------------------------------------------------------------------------
# the data
# --------------------------------------------------------------------------
def make_images(seed=0):
    """Five 60x80 label maps and per image the scores of three scorers.

    ``tied``: ``k / 256``, ``k`` an int in [0, 256) (heavy ties);
    ``fine``: ``k / 2048``, ``k`` in [0, 4096) (ties broken, mostly);
    ``energy``: ``k / 128 - 1.5`` (negative and positive scores).
    """
    rng = np.random.default_rng(seed)
    labels, ks = [], []

    def background(lab):
        return rng.integers(0, 48, lab.shape)        # ID: 48 tied levels

    def high(k, region, lo=90, hi=200):
        k[region] = rng.integers(lo, hi, k[region].shape)

    # 0: blobs of many sizes, a diagonal pair, void strip and line
    lab = np.zeros((H, W), np.uint8)
    lab[5:17, 5:21] = 1          # 192 px
    lab[25:32, 30:37] = 1        # 49 px
    lab[45:48, 10:13] = 1        # 9 px: void when min_gt_size = 10
    lab[38:43, 50:55] = 1        # 25 px + 25 px, touching at a corner:
    lab[43:48, 55:60] = 1        # one 8-connected component
    lab[10:21, 64:72] = 1        # 88 px, beside the void strip
    lab[:, 72:] = VOID
    lab[33, 0:22] = VOID         # cuts a predicted region in two
    k = background(lab)
    high(k, lab == 1)
    k[5:17, 5:21][rng.random((12, 16)) < 0.2] = 20     # missed pixels
    high(k, (slice(44, 49), slice(9, 14)), 150)  # 25 px around the 9
    high(k, (slice(50, 58), slice(25, 41)), 64, 180)   # ID, scored high
    high(k, (slice(30, 37), slice(0, 9)), 64, 180)     # across the line
    k[:, 72:] = rng.integers(0, 256, (H, 8))           # void: anything
    labels.append(lab)
    ks.append(k)

    # 1: no OOD at all; a large and a small false positive
    lab = np.zeros((H, W), np.uint8)
    lab[:10] = VOID
    k = background(lab)
    high(k, (slice(20, 35), slice(30, 50)), 64, 200)
    high(k, (slice(50, 54), slice(5, 9)), 64, 200)
    labels.append(lab)
    ks.append(k)

    # 2: one predicted region bridging two ground-truth components; a
    # component with a void gap inside
    lab = np.zeros((H, W), np.uint8)
    lab[10:30, 10:25] = 1
    lab[10:30, 28:40] = 1
    lab[40:55, 50:70] = 1
    lab[45:50, 55:65] = VOID
    k = background(lab)
    high(k, (slice(15, 25), slice(20, 33)), 60, 200)
    high(k, (slice(40, 55), slice(50, 70)))
    k[12:28, 30:38] = rng.integers(40, 80, (16, 8))    # B: weak
    labels.append(lab)
    ks.append(k)

    # 3, 4: smooth random shapes (diagonal contacts, holes, many sizes)
    for _ in range(2):
        f = ndimage.gaussian_filter(rng.standard_normal((H, W)), 2.5)
        f /= f.std()
        lab = (f > 1.2).astype(np.uint8)
        lab[f < -1.8] = VOID
        noise = rng.standard_normal((H, W))
        k = np.clip(np.rint(60 + 45 * f + 25 * noise), 0, 255).astype(int)
        labels.append(lab)
        ks.append(k)

    scores = dict(tied=[], fine=[], energy=[])
    for k in ks:
        fine = np.clip(8 * k + rng.integers(0, 8, k.shape), 0, 4095)
        scores['tied'].append((k / 256).astype(np.float32))
        scores['fine'].append((fine / 2048).astype(np.float32))
        scores['energy'].append((k / 128 - 1.5).astype(np.float32))
    return scores, labels


@pytest.fixture(scope='module')
def data():
    scores, labels = make_images()
    for name in SCORERS:               # the grid is exact in float32
        for s in scores[name]:
            assert np.array_equal(s.astype(np.float64) * 2048,
                                  np.rint(s.astype(np.float64) * 2048))
    return scores, labels


@pytest.fixture(scope='module')
def reference(data):
    scores, labels = data
    return {n: ref_pixel(scores[n], labels) for n in SCORERS}


def flat(images):
    return np.concatenate([x.ravel() for x in images])


# --------------------------------------------------------------------------
# pixel metrics
# --------------------------------------------------------------------------
@pytest.mark.parametrize('name', SCORERS)
def test_pixel_metrics_match_the_reference(data, reference, name):
    scores, labels = data
    ref = reference[name]
    exact = pixel_ood_metrics(flat(scores[name]), flat(labels))
    stream = PixelOODAccumulator(bits=20)
    for s, y in zip(scores[name], labels):
        stream.update(s, y)
    stream = stream.compute()
    for k in PIXEL_KEYS:
        assert abs(exact[k] - ref[k]) <= TOL, (k, exact[k], ref[k])
        assert abs(stream[k] - ref[k]) <= TOL, (k, stream[k], ref[k])
    assert exact['best_f1_threshold'] == ref['best_f1_threshold']
    t, s_all = ref['best_f1_threshold'], flat(scores[name])
    if t >= 0:
        # a non-negative grid value is its bin's lower edge
        assert stream['best_f1_threshold'] == t
    else:
        # the lower edge of a negative value's bin is the bin's most
        # negative value: below t by less than a bin (2^-11 of |t|), and no
        # score lies between the two, so `>=` selects the same pixels
        edge = stream['best_f1_threshold']
        assert t - abs(t) * 2.0 ** -11 <= edge < t
        assert not np.any((s_all >= edge) & (s_all < t))


@pytest.mark.parametrize('name', SCORERS)
def test_pixel_metrics_match_sklearn(data, reference, name):
    scores, labels = data
    y, s = flat(labels), flat(scores[name]).astype(np.float64)
    y, s = y[y != VOID], s[y != VOID]
    assert abs(average_precision_score(y, s) - reference[name]['ap']) <= TOL
    assert abs(roc_auc_score(y, s) - reference[name]['auroc']) <= TOL


def test_the_data_tell_the_pixel_definitions_apart(data, reference):
    """Had the package used another definition, the parity tests would
    fail: each alternative is far (> 1e-4) from the SMIYC value here."""
    scores, labels = data
    y, s = flat(labels), flat(scores['tied']).astype(np.float64)
    y, s = y[y != VOID] == 1, s[y != VOID]
    ref = reference['tied']
    ts = np.unique(s)[::-1]
    tp = np.array([np.sum((s >= t) & y) for t in ts], float)
    fp = np.array([np.sum((s >= t) & ~y) for t in ts], float)
    tpr, fpr, prec = tp / y.sum(), fp / (~y).sum(), tp / (tp + fp)
    # AP by trapezoids over (recall, precision), from (0, 1)
    trapezoid_ap = np.sum(np.diff(np.r_[0, tpr])
                          * (np.r_[1, prec][1:] + np.r_[1, prec][:-1]) / 2)
    assert abs(trapezoid_ap - ref['ap']) > 1e-4
    # FPR95 interpolated linearly between the points around TPR 0.95
    interpolated = np.interp(0.95, np.r_[0, tpr], np.r_[0, fpr])
    assert abs(interpolated - ref['fpr95']) > 1e-4
    # ties counted as 0 or 1 instead of 1/2
    neg = np.sort(s[~y])
    below = np.searchsorted(neg, s[y], 'left').sum()
    not_above = np.searchsorted(neg, s[y], 'right').sum()
    pairs = y.sum() * (~y).sum()
    assert ref['auroc'] - below / pairs > 1e-4
    assert not_above / pairs - ref['auroc'] > 1e-4
    # per-image AP averaged instead of pooled
    per_image = np.mean([ref_pixel([a], [b])['ap'] for a, b in
                         zip(scores['tied'], labels) if np.any(b == 1)])
    assert abs(per_image - ref['ap']) > 1e-4


def test_fpr95_where_tpr_reaches_exactly_95_percent():
    """20 OOD scores 21/64 .. 40/64, 40 ID scores 0 .. 39/64 (and void).

    At t = 22/64: TP = 19, TPR = 0.95 exactly, FP = 18 (22 .. 39):
    FPR95 = 18 / 40 = 0.45. Taking the first TPR > 0.95 instead gives
    t = 21/64, FP = 19: 0.475.
    """
    s = np.r_[np.arange(21, 41), np.arange(40), 63, 0] / 64
    y = np.r_[np.ones(20), np.zeros(40), VOID, VOID].astype(np.uint8)
    s = s.astype(np.float32)
    assert ref_pixel([s], [y])['fpr95'] == 0.45
    assert pixel_ood_metrics(s, y)['fpr95'] == 0.45
    assert PixelOODAccumulator().update(s, y).compute()['fpr95'] == 0.45
    fpr, tpr, _ = roc_curve(y[:60], s[:60], drop_intermediate=False)
    assert fpr[np.argmax(tpr >= 0.95)] == 0.45


# --------------------------------------------------------------------------
# component metrics
# --------------------------------------------------------------------------
def assert_components_match(got, ref):
    for key in ('siou', 'ppv', 'mean_f1'):
        assert abs(got[key] - ref[key]) <= TOL, (key, got[key], ref[key])
    for tau, f1 in zip(TAUS, ref['f1']):
        assert abs(got[f'f1@{tau:g}'] - f1) <= TOL, (tau, got, f1)
    assert got['num_gt_components'] == ref['num_gt_components']
    assert got['num_pred_components'] == ref['num_pred_components']


@pytest.mark.parametrize('sizes', [(20, 10), (50, 10)])
@pytest.mark.parametrize('k', [56, 64, 100])
def test_component_metrics_match_the_reference(data, sizes, k):
    scores, labels = data
    threshold = k / 256        # a grid value: many scores tie with it
    ref = ref_components(scores['tied'], labels, threshold, *sizes)
    assert ref['removed'] > 0 and ref['voided'] > 0   # filters act
    assert ref['num_gt_components'] >= 8 and ref['num_pred_components'] >= 8
    acc = ComponentAccumulator(threshold, min_pred_size=sizes[0],
                               min_gt_size=sizes[1])
    for s, y in zip(scores['tied'], labels):
        acc.update(s, y)
    assert_components_match(acc.compute(), ref)


def test_ood_metric_at_its_best_f1_threshold(data, reference, tmp_path):
    """The mmengine metric end to end (ObstacleTrack sizes 50 / 10)."""
    scores, labels = data
    metric = OODMetric(component_preset='obstacle_track',
                       spill_dir=str(tmp_path))
    for i, lab in enumerate(labels):
        metric.process({}, [dict(
            ood_scores={n: torch.from_numpy(scores[n][i]) for n in SCORERS},
            gt_sem_seg=dict(data=torch.from_numpy(lab)[None]),
            img_path=f'{i}.png')])
    out = metric.evaluate(len(labels))
    for name in SCORERS:
        ref = reference[name]
        got = {k[len(f'ood/{name}/'):]: v for k, v in out.items()
               if k.startswith(f'ood/{name}/')}
        for k in PIXEL_KEYS:
            assert abs(got[k] - ref[k]) <= TOL, (name, k)
        comp = ref_components(scores[name], labels,
                              ref['best_f1_threshold'], 50, 10)
        assert comp['removed'] > 0 and comp['voided'] > 0
        assert_components_match(got, comp)


def test_the_data_tell_the_component_definitions_apart(data, reference):
    """Each alternative moves sIoU, PPV or mean F1 by more than 1e-3 at the
    best-F1 threshold, so the parity tests above would catch it."""
    scores, labels = data
    s, t = scores['tied'], reference['tied']['best_f1_threshold']
    smiyc = ref_components(s, labels, t, 20, 10)
    foils = dict(
        strict=ref_components(s, labels, t, 20, 10, strict=True),
        four=ref_components(s, labels, t, 20, 10, structure=FOUR),
        per_image=ref_components(s, labels, t, 20, 10, per_image=True),
        after_void=ref_components(s, labels, t, 20, 10,
                                  filter_after_void=True))
    for name, foil in foils.items():
        moved = max(abs(foil[k] - smiyc[k])
                    for k in ('siou', 'ppv', 'mean_f1'))
        assert moved > 1e-3, name


def test_hand_worked_example():
    """Two ground-truth components, two predicted ones.

    Labels (5 x 12; A, B: OOD; v: void; .: ID) and predictions (#, and
    `%` scored exactly at the threshold)::

        row 1   . A A A A . . B B B . .      pred  . # . # # # # # # . . .
        row 2   . . . . . . . . . . . .      pred  % # . . . . . . . . . .
        row 3   . . v . . . . . . . . .      pred  . . # . . . . . . . . .

    A = 4 px (row 1, cols 1-4), B = 3 px (cols 7-9).
    P1 = row 1, cols 3-8: 6 px; 2 on A, 2 on B, 2 on ID.
    P2 = (1,1), (2,0) at the threshold, (2,1): 3 px; 1 on A.
    (3,2) is void: its prediction is dropped (else P2 has 4 px).

    sIoU(A): K = P1 | P2 (9 px), |A & K| = 3, |A | K| = 4 + 9 - 3 = 10,
    less P1 & B (2 px) -> 3 / 8.  sIoU(B): K = P1, |B & K| = 2,
    |B | K| = 3 + 6 - 2 = 7, less P1 & A (2 px) -> 2 / 5.
    PPV(P1) = 4 / 6, PPV(P2) = 1 / 3.
    sIoU = (3/8 + 2/5) / 2 = 0.3875; PPV = (2/3 + 1/3) / 2 = 0.5.
    F1: tau 0.25, 0.30: TP 2, FN 0, FP 0 -> 1; tau 0.35: TP 2, FP 1 (P2)
    -> 4/5; tau 0.40: TP 1 (2/5 >= 0.4), FN 1, FP 1 -> 2/4; tau >= 0.45:
    TP 0 -> 0.  mean F1 = (1 + 1 + 0.8 + 0.5) / 11 = 0.3.
    """
    lab = np.zeros((5, 12), np.uint8)
    lab[1, 1:5] = 1
    lab[1, 7:10] = 1
    lab[3, 2] = VOID
    score = np.zeros(lab.shape, np.float32)
    score[1, 3:9] = 1.0
    score[1, 1] = score[2, 1] = score[3, 2] = 1.0
    score[2, 0] = 0.5
    want = dict(siou=0.3875, ppv=0.5, mean_f1=0.3,
                f1=[1, 1, 0.8, 0.5] + [0] * 7,
                num_gt_components=2, num_pred_components=2)
    ref = ref_components([score], [lab], 0.5, 1, 1)
    for key in ('siou', 'ppv', 'mean_f1'):
        assert abs(ref[key] - want[key]) <= TOL, key
    assert np.allclose(ref['f1'], want['f1'], rtol=0, atol=TOL)
    got = ComponentAccumulator(0.5, min_pred_size=1, min_gt_size=1).update(
        score, lab).compute()
    assert_components_match(got, want)
    # `>` drops (2, 0): PPV(P2) = 1/2, so the package's `>=` shows
    assert abs(ref_components([score], [lab], 0.5, 1, 1, strict=True)['ppv']
               - (2 / 3 + 1 / 2) / 2) <= TOL


def test_tau_grid_is_decimal():
    """sIoU = PPV = 3/5 exactly counts as a hit at tau = 0.6.

    GT C = 3 px; the prediction covers C and 2 ID pixels: sIoU = 3 / 5,
    PPV = 3 / 5. F1 = 1 at the 8 taus <= 0.6 (TP 1), 0 at 0.65 to 0.75
    (FN 1, FP 1): mean F1 = 8 / 11. The benchmark's code takes its taus
    from np.linspace(0.25, 0.75, 11), whose 8th value is
    0.6000000000000001: there F1(0.6) = 0 and mean F1 = 7 / 11.
    """
    lab = np.zeros((3, 7), np.uint8)
    lab[1, 1:4] = 1
    score = np.zeros(lab.shape, np.float32)
    score[1, 1:6] = 1.0
    got = ComponentAccumulator(0.5, min_pred_size=1, min_gt_size=1).update(
        score, lab).compute()
    ref = ref_components([score], [lab], 0.5, 1, 1)
    assert ref['siou'] == ref['ppv'] == 0.6
    assert abs(ref['mean_f1'] - 8 / 11) <= TOL
    assert_components_match(got, ref)
    benchmark_taus = np.linspace(0.25, 0.75, 11)
    assert benchmark_taus[7] > 0.6
    linspace = ref_components([score], [lab], 0.5, 1, 1,
                              taus=benchmark_taus)
    assert abs(linspace['mean_f1'] - 7 / 11) <= TOL
    # the benchmark's own grid in the package's SMIYC mode: 7 / 11 too
    mode = ComponentAccumulator(0.5, min_pred_size=1, min_gt_size=1,
                                taus=SMIYC_TAUS).update(score, lab).compute()
    assert abs(mode['mean_f1'] - 7 / 11) <= TOL


# --------------------------------------------------------------------------
# the benchmark's own threshold: component_threshold='smiyc'
# --------------------------------------------------------------------------
# The reference below is the benchmark's code at commit 1c7804e as read,
# written again in its own steps (not the package's): per frame
# (road_anomaly_benchmark/metrics/pixel_classification.py,
# binary_confusion_matrix with bin_strategy='percentiles', num_bins=768)
# np.quantile and np.histogram of the unsorted scores of each class, the
# histograms reversed to run from the highest threshold down, a bin's
# pixels standing at its lower edge; pooled (aggregate_dynamic_bins) by
# concatenating the frames and ordering them by np.argsort(...)[::-1];
# curves_from_cmats keeps the first point and the last point of each run of
# equal thresholds, puts (TP, FP) = (0, 0) in front at max + 1, and
# get_thresh_p_from_curve reads the threshold of np.nanargmax(F1);
# default_instancer then predicts `score > threshold`.
SMIYC_BENCHMARK_TAUS = list(np.linspace(0.25, 0.75, 11))


def ref_smiyc_frame(score, label, num_bins=768):
    """One frame: (thresholds, TP increments, FP increments), highest
    threshold first, and the frame's OOD and ID pixel counts."""
    roi = label != VOID
    prob, gt = score[roi], label[roi] == 1
    vmin, vmax = np.min(prob), np.max(prob)
    eps = np.maximum((vmax - vmin) * 1e-2, 1e-2)
    bins = [[vmin - eps, vmax + eps]]
    for part in (prob[gt], prob[~gt]):
        if part.size:
            bins.append(np.quantile(
                part, np.linspace(0, 1, min(num_bins // 2, part.size))))
    bins = np.unique(np.concatenate(bins))
    tp_rel, _ = np.histogram(prob[gt], bins=bins)
    fp_rel, edges = np.histogram(prob[~gt], bins=bins)
    return (edges[::-1][1:], tp_rel[::-1], fp_rel[::-1], int(gt.sum()),
            int((~gt).sum()))


def ref_smiyc_threshold(scores, labels):
    """The benchmark's best-F1 threshold of the pooled frames."""
    frames = [ref_smiyc_frame(s, y) for s, y in zip(scores, labels)
              if np.any(y != VOID)]
    thr = np.concatenate([f[0] for f in frames])
    tp_rel = np.concatenate([f[1] for f in frames])
    fp_rel = np.concatenate([f[2] for f in frames])
    num_pos, num_neg = sum(f[3] for f in frames), sum(f[4] for f in frames)
    order = np.argsort(thr)[::-1]
    tp = np.cumsum(tp_rel[order].astype(np.float64))
    fp = np.cumsum(fp_rel[order].astype(np.float64))
    thr = thr[order]
    keep = np.concatenate([[0], np.nonzero(thr[:-1] != thr[1:])[0],
                           [len(thr) - 1]])
    tp, fp, thr = tp[keep], fp[keep], thr[keep]
    fn = num_pos - tp
    if tp[0] != 0 or fp[0] != 0:
        tp, fp = np.concatenate([[0], tp]), np.concatenate([[0], fp])
        fn = np.concatenate([[num_pos], fn])
        thr = np.concatenate([[float(np.max(thr)) + 1], thr])
    with np.errstate(invalid='ignore'):
        f1 = (2 * tp) / (2 * tp + fp + fn)
    assert num_neg > 0
    return float(thr[np.nanargmax(f1)])


def heavy_ties(data, levels=16):
    """The `tied` maps on a grid of `levels` values: the benchmark's bin
    edges fall on scores, so `>` and `>=` at its threshold differ."""
    scores, labels = data
    return [np.floor(s * levels).astype(np.float32) / levels
            for s in scores['tied']], labels


def smiyc_metric(scores, labels, tmp_path):
    """OODMetric with component_threshold='smiyc' (ObstacleTrack sizes 50 /
    10) over the maps of one scorer `x`; its results."""
    metric = OODMetric(component_threshold='smiyc',
                       component_preset='obstacle_track',
                       spill_dir=str(tmp_path))
    for i, (s, y) in enumerate(zip(scores, labels)):
        metric.process({}, [dict(
            ood_scores={'x': torch.from_numpy(s)},
            gt_sem_seg=dict(data=torch.from_numpy(y)[None]),
            img_path=f'{i}.png')])
    out = metric.evaluate(len(labels))
    assert metric.last_thresholds == {'x': 'smiyc'}
    return {k[len('ood/x/'):]: v for k, v in out.items()
            if k.startswith('ood/x/')}


def test_smiyc_frame_bins_are_the_benchmarks(data):
    scores, labels = data
    frames = [(s, y) for n in SCORERS for s, y in zip(scores[n], labels)]
    frames += [(s.astype(dt), y) for s, y in frames[:5]
               for dt in (np.float16, np.float64)]
    for s, y in frames:
        edges, pos, neg = smiyc_frame_bins(s[y != VOID], y[y != VOID] == 1)
        ref = ref_smiyc_frame(s, y)
        assert edges.dtype == ref[0].dtype
        assert np.array_equal(edges, ref[0][::-1])
        assert np.array_equal(pos, ref[1][::-1])
        assert np.array_equal(neg, ref[2][::-1])
    assert not np.any(labels[1] == 1)  # a frame without OOD pixels
    with pytest.raises(ValueError, match='one or more scores'):
        smiyc_frame_bins(np.zeros(0), np.zeros(0, bool))


@pytest.mark.parametrize('name', SCORERS)
def test_smiyc_threshold_is_the_benchmarks(data, name):
    scores, labels = data
    curve = SMIYCBinnedCurve()
    for s, y in zip(scores[name], labels):
        curve.update(s, y)
    got = curve.compute()
    ref = ref_smiyc_threshold(scores[name], labels)
    assert got['smiyc_threshold'] == ref and got['frames'] == 5
    # merged in order (as ranks are): the same frames, the same threshold
    a, b = SMIYCBinnedCurve(), SMIYCBinnedCurve()
    for i, (s, y) in enumerate(zip(scores[name], labels)):
        (a if i < 2 else b).update(s, y)
    assert SMIYCBinnedCurve().load_state_dict(a.state_dict()).merge(
        b).compute() == got


def test_smiyc_mode_is_the_benchmark_end_to_end(data, tmp_path):
    """Heavy ties: the benchmark's threshold is a score that many pixels
    hold; its `>` leaves them out. Every component number of the mode is
    the reference's; the exact mode (`>=` at the exact best-F1 threshold)
    is far from it: PPV moves by more than 5 points."""
    scores, labels = heavy_ties(data)
    t = ref_smiyc_threshold(scores, labels)
    assert sum(int(np.sum(s == t)) for s in scores) > 500
    got = smiyc_metric(scores, labels, tmp_path)
    ref = ref_components(scores, labels, t, 50, 10, strict=True,
                         taus=SMIYC_BENCHMARK_TAUS)
    assert got['component_threshold'] == t
    assert_components_match(got, ref)
    for k, v in ref_pixel(scores, labels).items():  # pixel metrics as ever
        if k in PIXEL_KEYS:
            assert abs(got[k] - v) <= TOL
    exact = ref_components(scores, labels,
                           ref_pixel(scores, labels)['best_f1_threshold'],
                           50, 10)
    assert abs(exact['ppv'] - ref['ppv']) > 0.05
    # `>=` at the benchmark's own threshold is not its number either
    ge = ref_components(scores, labels, t, 50, 10, taus=SMIYC_BENCHMARK_TAUS)
    assert max(abs(ge[k] - ref[k]) for k in ('siou', 'ppv')) > 0.05


def test_smiyc_mode_follows_the_benchmarks_binning(data, tmp_path):
    """Finely spread scores: the benchmark's threshold is an interpolated
    quantile, not the exact best-F1 score, and the components there differ
    from the exact mode's."""
    scores, labels = data
    scores = scores['fine']
    t = ref_smiyc_threshold(scores, labels)
    exact_t = ref_pixel(scores, labels)['best_f1_threshold']
    assert t != exact_t
    got = smiyc_metric(scores, labels, tmp_path)
    ref = ref_components(scores, labels, t, 50, 10, strict=True,
                         taus=SMIYC_BENCHMARK_TAUS)
    assert got['component_threshold'] == t
    assert_components_match(got, ref)
    exact = ref_components(scores, labels, exact_t, 50, 10)
    assert abs(ref['siou'] - exact['siou']) > 1e-4


def test_smiyc_threshold_keeps_the_benchmarks_frame_order():
    """The highest edges of two frames tie at 1.0. The benchmark keeps the
    first point of its sorted curve whatever follows it: with frame A (10
    OOD pixels at 1.0) first, that point (TP 10, FP 0) has the best F1;
    with frame B (10 ID pixels at 1.0) first it has F1 0, and a lower
    threshold wins. The package pools frames in the order they come, as
    the benchmark does."""
    a_s = np.r_[np.ones(10), np.full(30, 0.3), np.linspace(0.31, 0.5, 130),
                np.linspace(0, 0.2, 400)].astype(np.float32)[None]
    a_y = np.r_[np.ones(40), np.zeros(530)].astype(np.uint8)[None]
    b_s = np.r_[np.ones(10), np.linspace(0, 0.2, 400)].astype(
        np.float32)[None]
    b_y = np.zeros((1, 410), np.uint8)
    found = []
    for frames in (((a_s, a_y), (b_s, b_y)), ((b_s, b_y), (a_s, a_y))):
        curve = SMIYCBinnedCurve()
        for s, y in frames:
            curve.update(s, y)
        t = curve.compute()['smiyc_threshold']
        assert t == ref_smiyc_threshold(*zip(*frames))
        found.append(t)
    assert found[0] == 1.0 and found[1] < 0.5


def test_smiyc_rule_reaches_the_metric():
    """--component-threshold smiyc -> OODMetric(component_threshold=
    'smiyc'), recorded as 'smiyc'; the curve's arguments are checked."""
    from mmseg_ood.apis.ood_test import _metric_threshold, _rule_name
    from mmseg_ood.apis.ood_test_options import parse_component_threshold
    rule = parse_component_threshold('smiyc')
    assert rule == ('smiyc', None) and _rule_name(rule) == 'smiyc'
    assert _metric_threshold(rule, None, None, {}) == 'smiyc'
    OODMetric(component_threshold={'msp': 'smiyc', 'energy': 0.5})
    with pytest.raises(ValueError, match="'smiyc'"):
        OODMetric(component_threshold='smyic')
    with pytest.raises(ValueError, match='num_bins'):
        SMIYCBinnedCurve(num_bins=1)
    with pytest.raises(ValueError, match='strict'):
        ComponentAccumulator(0.5, strict='yes')
    empty = SMIYCBinnedCurve().update(np.zeros((2, 2), np.float32),
                                      np.full((2, 2), VOID, np.uint8))
    assert empty.compute()['frames'] == 0
    assert np.isnan(empty.compute()['smiyc_threshold'])
