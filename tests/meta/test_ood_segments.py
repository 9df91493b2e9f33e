"""OOD segments (entropy-maximization paper, sec. 4, eq. 8-10, appendix B,
eq. 11-16): hand-built segments, a slow loop reference, ground truth."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from mmseg_ood.meta.segments import (FALSE_POSITIVE, IGNORED, TRUE_POSITIVE,
                                     PixelMeasures, feature_names,
                                     image_segments, label_segments,
                                     pixel_measures, segment_features,
                                     segment_truth)

MEASURES = ('E', 'V', 'M')
REGIONS = ('', '_in', '_bd')


def ref_measures(p):
    """Eq. 11-13 at one pixel, float64: normalized entropy, variation ratio,
    probability margin."""
    p = np.asarray(p, np.float64)
    top = np.sort(p)[::-1]
    e = -sum(x * np.log(x) for x in p if x > 0) / np.log(p.size)
    return e, 1.0 - top[0], 1.0 - top[0] + top[1]


def mean_var(values):
    """Mean and population variance of a list; (0, 0) when empty."""
    if not values:
        return 0.0, 0.0
    m = sum(values) / len(values)
    return m, sum((v - m) ** 2 for v in values) / len(values)


def column(name, q):
    return feature_names(q).index(name)


# --------------------------------------------------------------------------
# a hand-built 7 x 9 image, q = 3
#
#   S: segment pixels (score 1); digits: predicted class of the other pixels
#
#        c: 0 1 2 3 4 5 6 7 8
#   r0:     0 0 0 0 0 1 2 S S     seg 1: 2x2 on the top / right border
#   r1:     0 S S S 0 1 2 S S     seg 2: 3x3 square (interior (2, 2))
#   r2:     1 S S S 1 2 0 1 2     seg 3: (3, 6) and (4, 5), touching only
#   r3:     1 S S S 2 0 S 1 1            diagonally: one segment
#   r4:     2 2 2 2 1 S 0 0 2     seg 4: L (5, 0), (6, 0), (6, 1)
#   r5:     S 1 0 0 0 1 2 0 0     seg 5: the single pixel (6, 8)
#   r6:     S S 1 1 2 2 2 2 S
#
# Neighbourhoods, by hand (pixels outside k, inside the image, one step):
#   seg 1: (0,6)=2 (1,6)=2 (2,6)=0 (2,7)=1 (2,8)=2          -> 1/5 1/5 3/5
#   seg 2: the 5x5 ring rows 0-4, cols 0-4: 0 x7, 1 x4, 2 x5 -> 7/16 ...
#   seg 3: (2,5)=2 (2,6)=0 (2,7)=1 (3,4)=2 (3,5)=0 (3,7)=1
#          (4,4)=1 (4,6)=0 (4,7)=0 (5,4)=0 (5,5)=1 (5,6)=2   -> 5/12 4/12 3/12
#   seg 4: (4,0)=2 (4,1)=2 (5,1)=1 (5,2)=0 (6,2)=1          -> 1/5 2/5 2/5
#   seg 5: (5,7)=0 (5,8)=0 (6,7)=2                          -> 2/3 0 1/3
# (2,6), (2,7) neighbour segs 1 and 3; (3,4), (4,4) segs 2 and 3.
# --------------------------------------------------------------------------
PRED_MAP = ['0000012..', '0...012..', '1...12012', '1...20.11',
            '22221.002', '.10001200', '..112222.']
SEGMENTS = {  # label (raster order of first pixel) -> pixels
    1: [(0, 7), (0, 8), (1, 7), (1, 8)],
    2: [(r, c) for r in (1, 2, 3) for c in (1, 2, 3)],
    3: [(3, 6), (4, 5)],
    4: [(5, 0), (6, 0), (6, 1)],
    5: [(6, 8)],
}
INTERIOR = {1: [], 2: [(2, 2)], 3: [], 4: [], 5: []}
NEIGHBOUR_FRACTIONS = {1: [1 / 5, 1 / 5, 3 / 5], 2: [7 / 16, 4 / 16, 5 / 16],
                       3: [5 / 12, 4 / 12, 3 / 12], 4: [1 / 5, 2 / 5, 2 / 5],
                       5: [2 / 3, 0, 1 / 3]}
SIZES = {  # S, S_in, S_bd, S_rel, S_in_rel
    1: [4, 0, 4, 1, 0], 2: [9, 1, 8, 9 / 8, 1 / 8], 3: [2, 0, 2, 1, 0],
    4: [3, 0, 3, 1, 0], 5: [1, 0, 1, 1, 0]}
CENTROIDS = {  # C_h = mean row / 7, C_w = mean col / 9
    1: [0.5 / 7, 7.5 / 9], 2: [2 / 7, 2 / 9], 3: [3.5 / 7, 5.5 / 9],
    4: [(17 / 3) / 7, (1 / 3) / 9], 5: [6 / 7, 8 / 9]}


def hand_image(seed=0):
    """``(probs (3, 7, 9) float32, score (7, 9))``: every pixel's argmax is
    its class in PRED_MAP (segment pixels: ``(r + c) % 3``), with a random
    top probability in [0.45, 0.95) and the rest split 0.7 / 0.3."""
    rng = np.random.default_rng(seed)
    h, w, q = 7, 9, 3
    probs = np.zeros((q, h, w))
    score = np.zeros((h, w))
    for r in range(h):
        for c in range(w):
            ch = PRED_MAP[r][c]
            cls = (r + c) % q if ch == '.' else int(ch)
            score[r, c] = float(ch == '.')
            a = rng.uniform(0.45, 0.95)
            probs[cls, r, c] = a
            probs[(cls + 1) % q, r, c] = 0.7 * (1 - a)
            probs[(cls + 2) % q, r, c] = 0.3 * (1 - a)
    return probs.astype(np.float32), score


def test_hand_built_segments_labels():
    _, score = hand_image()
    labels, n = label_segments(score, 0.5)
    assert n == 5
    assert labels.shape == (7, 9) and labels.dtype == np.int32
    expected = np.zeros((7, 9), int)
    for k, pix in SEGMENTS.items():
        for r, c in pix:
            expected[r, c] = k
    np.testing.assert_array_equal(labels, expected)


def test_hand_built_segments_features():
    probs, score = hand_image()
    q = 3
    labels, n = label_segments(score, 0.5)
    feats = segment_features(pixel_measures(probs), labels, n)
    assert feats.shape == (5, 25 + 2 * q) and feats.dtype == np.float64
    names = feature_names(q)
    got = {k: dict(zip(names, feats[k - 1])) for k in SEGMENTS}
    p64 = probs.astype(np.float64)
    for k, pix in SEGMENTS.items():
        g = got[k]
        # geometry (eq. 14) and centroid (eq. 16), written by hand
        for name, v in zip(['S', 'S_in', 'S_bd', 'S_rel', 'S_in_rel'],
                           SIZES[k]):
            assert g[name] == pytest.approx(v, abs=1e-12), (k, name)
        assert g['C_h'] == pytest.approx(CENTROIDS[k][0], abs=1e-12)
        assert g['C_w'] == pytest.approx(CENTROIDS[k][1], abs=1e-12)
        # neighbourhood (eq. 15), written by hand
        for j in range(q):
            assert g[f'N_{j}'] == pytest.approx(NEIGHBOUR_FRACTIONS[k][j],
                                                abs=1e-12), (k, j)
        # mean class probabilities over the listed pixels
        rows, cols = np.array(pix).T
        for j in range(q):
            assert g[f'P_{j}'] == pytest.approx(
                p64[j, rows, cols].mean(), rel=1e-7, abs=1e-9), (k, j)
        # dispersion measures (eq. 11-13) over k, k_in, k_bd
        interior = INTERIOR[k]
        boundary = [z for z in pix if z not in interior]
        for i, m in enumerate(MEASURES):
            for region, zs in zip(REGIONS, (pix, interior, boundary)):
                vals = np.array([ref_measures(p64[:, r, c])[i]
                                 for r, c in zs])
                mean = vals.mean() if vals.size else 0.0
                var = vals.var() if vals.size else 0.0
                assert g[f'{m}{region}_mean'] == pytest.approx(
                    mean, rel=1e-5, abs=1e-7), (k, m, region)
                assert g[f'{m}{region}_var'] == pytest.approx(
                    var, rel=1e-5, abs=1e-7), (k, m, region)


def test_square_interior_and_empty_interior():
    probs, score = hand_image(seed=3)
    labels, n = label_segments(score, 0.5)
    feats = segment_features(pixel_measures(probs), labels, n)
    q = 3
    e = ref_measures(probs[:, 2, 2].astype(np.float64))[0]
    sq = feats[1]
    assert sq[column('E_in_mean', q)] == pytest.approx(e, rel=1e-6)
    assert sq[column('E_in_var', q)] == 0
    for k in (1, 3, 4, 5):  # no interior pixel: mean and variance 0
        for m in MEASURES:
            assert feats[k - 1, column(f'{m}_in_mean', q)] == 0
            assert feats[k - 1, column(f'{m}_in_var', q)] == 0
    # a single pixel: boundary = segment, variance 0
    e, v, mm = ref_measures(probs[:, 6, 8].astype(np.float64))
    single = feats[4]
    assert single[column('E_bd_mean', q)] == pytest.approx(e, rel=1e-6)
    assert single[column('V_mean', q)] == pytest.approx(v, rel=1e-6)
    assert single[column('M_mean', q)] == pytest.approx(mm, rel=1e-6)
    assert single[column('E_var', q)] == 0


def test_whole_image_segment():
    """Every pixel a border pixel or interior; no neighbourhood: N_j = 0."""
    probs, _ = hand_image()
    labels, n = label_segments(np.ones((7, 9)), 0.5)
    assert n == 1
    f = segment_features(pixel_measures(probs), labels, n)[0]
    q = 3
    assert f[column('S', q)] == 63
    assert f[column('S_in', q)] == 5 * 7
    assert f[column('S_bd', q)] == 63 - 35
    for j in range(q):
        assert f[column(f'N_{j}', q)] == 0
    assert f[column('C_h', q)] == pytest.approx(3 / 7)
    assert f[column('C_w', q)] == pytest.approx(4 / 9)


def test_no_segment():
    probs, _ = hand_image()
    labels, n = label_segments(np.zeros((7, 9)), 0.5)
    assert n == 0 and not labels.any()
    assert segment_features(pixel_measures(probs), labels, 0).shape == (
        0, 25 + 2 * 3)


# --------------------------------------------------------------------------
# pixel measures (eq. 11-13)
# --------------------------------------------------------------------------


def test_pixel_measures_hand_values():
    p = np.array([0.5, 0.3, 0.2], np.float32).reshape(3, 1, 1)
    m = pixel_measures(p)
    e = -(0.5 * np.log(0.5) + 0.3 * np.log(0.3) + 0.2 * np.log(0.2)) \
        / np.log(3)
    assert m.E[0, 0] == pytest.approx(e, rel=1e-6)
    assert m.V[0, 0] == pytest.approx(0.5, rel=1e-6)
    assert m.M[0, 0] == pytest.approx(0.8, rel=1e-6)
    assert m.pred[0, 0] == 0
    # uniform: E = 1 (normalized by log q, not 1 / q as eq. 11 prints)
    u = pixel_measures(np.full((4, 2, 2), 0.25, np.float32))
    np.testing.assert_allclose(u.E, 1.0, rtol=1e-6)
    np.testing.assert_allclose(u.V, 0.75, rtol=1e-6)
    np.testing.assert_allclose(u.M, 1.0, rtol=1e-6)
    # one-hot: E = 0 (0 log 0 = 0), V = 0, M = 0
    oh = np.zeros((3, 1, 2), np.float32)
    oh[2] = 1
    m = pixel_measures(torch.from_numpy(oh))
    assert np.all(m.E == 0) and np.all(m.V == 0) and np.all(m.M == 0)
    assert np.all(m.pred == 2)


def test_pixel_measures_pred_ties_like_argmax():
    """mmseg predicts with argmax: the first of tied maxima."""
    p = np.full((19, 2, 3), 1 / 19, np.float32)
    np.testing.assert_array_equal(pixel_measures(p).pred, p.argmax(0))
    p = np.array([0.1, 0.45, 0.45], np.float32).reshape(3, 1, 1)
    assert pixel_measures(p).pred[0, 0] == 1


# --------------------------------------------------------------------------
# slow reference: explicit loops over segments and pixels
# --------------------------------------------------------------------------


def random_probs(seed, q=4, h=12, w=15):
    """Softmax of smooth-ish random logits: a mix of confident and
    uncertain regions (float32, as a network gives them)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (q, h // 3 + 2, w // 3 + 2))
    logits = ndimage.zoom(logits, (1, h / logits.shape[1],
                                   w / logits.shape[2]), order=1)[:, :h, :w]
    logits = 5 * logits + rng.normal(0, 0.7, (q, h, w))
    p = np.exp(logits - logits.max(0))
    return (p / p.sum(0)).astype(np.float32)


def reference_features(probs, e, v, m, pred, labels, n):
    """Every feature of every segment by loops (features of
    ``feature_names(q)``, in that order)."""
    q, h, w = probs.shape
    steps = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)
             if dr or dc]
    values = {'E': e, 'V': v, 'M': m}
    rows = []
    for k in range(1, n + 1):
        pix = [(r, c) for r in range(h) for c in range(w)
               if labels[r, c] == k]
        inside = set(pix)
        interior = [(r, c) for r, c in pix
                    if all((r + dr, c + dc) in inside for dr, dc in steps)]
        boundary = [z for z in pix if z not in interior]
        row = []
        for name in MEASURES:
            for zs in (pix, interior, boundary):
                row += mean_var([float(values[name][z]) for z in zs])
        s, s_in, s_bd = len(pix), len(interior), len(boundary)
        row += [s, s_in, s_bd, s / s_bd, s_in / s_bd]
        nb = set()
        for r, c in pix:
            for dr, dc in steps:
                z = (r + dr, c + dc)
                if 0 <= z[0] < h and 0 <= z[1] < w and z not in inside:
                    nb.add(z)
        counts = [0] * q
        for z in nb:
            counts[int(pred[z])] += 1
        row += [x / len(nb) if nb else 0.0 for x in counts]
        row += [sum(float(probs[j][z]) for z in pix) / s for j in range(q)]
        row += [sum(r for r, _ in pix) / s / h, sum(c for _, c in pix) / s / w]
        rows.append(row)
    return np.array(rows, np.float64).reshape(n, 25 + 2 * q)


def reference_pixel_measures(probs):
    q, h, w = probs.shape
    out = np.zeros((3, h, w))
    pred = np.zeros((h, w), np.int64)
    for r in range(h):
        for c in range(w):
            p = probs[:, r, c].astype(np.float64)
            out[:, r, c] = ref_measures(p)
            pred[r, c] = max(range(q), key=lambda j: p[j])
    return out, pred


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
@pytest.mark.parametrize('threshold', [0.3, 0.6])
def test_features_match_slow_reference(seed, threshold):
    probs = random_probs(seed)
    (e, v, m), pred = reference_pixel_measures(probs)
    labels, n = ndimage.label(e >= threshold, structure=np.ones((3, 3)))
    # large segments with interiors (t = 0.3) or many small ones (0.6)
    interior = ndimage.binary_erosion(labels > 0, np.ones((3, 3))).sum()
    assert n >= 5 or (n >= 1 and interior >= 2)
    # the pixel measures of the module, against the float64 loops
    pm = pixel_measures(probs)
    for name, ref in zip(MEASURES, (e, v, m)):
        np.testing.assert_allclose(getattr(pm, name), ref, rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(pm.pred, pred)
    # the aggregation, from the same (float32) pixel values on both sides
    e32, v32, m32 = (x.astype(np.float32) for x in (e, v, m))
    measures = PixelMeasures(probs=probs, E=e32, V=v32, M=m32, pred=pred)
    ours_labels, ours_n = label_segments(e, threshold)
    assert ours_n == n
    np.testing.assert_array_equal(ours_labels, labels)
    ref = reference_features(probs, e32, v32, m32, pred, labels, n)
    got = segment_features(measures, ours_labels, ours_n)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)
    # end to end (float32 pixel measures of the module): close
    full = segment_features(pm, ours_labels, ours_n)
    np.testing.assert_allclose(full, ref, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------
# ground truth (sec. 4, eq. 8-10)
# --------------------------------------------------------------------------
#
# segments (8 x 10), raster order:   OOD labels (. ID, # OOD, v void):
#   r0: . . . 1 1 . . . . .           v v v v v v v v v v
#   r1: 2 2 . . . . 3 3 . .           . . . . . . v . . .
#   r2: 2 2 . . . . . . . .           . # . . . . . . . .
#   r3: . . . . . . . . . .           . # # . . . . . . #
#   r4: . . . 4 4 . . . . .           . . . . . . . . # #
#   r5: . . . . . . . . . .           . . . . . . . . . .
#   r6: . . . . . . 5 5 5 .           . . . . . . # . # .
#   r7: . . . . . . . . . .           . . . . . . # . # .
# seg 1: void only (ignored); seg 2: one OOD pixel (TP); seg 3: void + ID
# (FP); seg 4: ID only (FP); seg 5: touches two objects (TP, two pairs);
# the object (3, 9), (4, 8), (4, 9) is missed.
SEG_ROWS = ['...11.....', '22....33..', '22........', '..........',
            '...44.....', '..........', '......555.', '..........']
OOD_ROWS = ['vvvvvvvvvv', '......v...', '.#........', '.##......#',
            '........##', '..........', '......#.#.', '......#.#.']


def truth_case():
    seg = np.array([[0 if ch == '.' else int(ch) for ch in row]
                    for row in SEG_ROWS], np.int32)
    ood = np.array([[{'.': 0, '#': 1, 'v': 255}[ch] for ch in row]
                    for row in OOD_ROWS], np.uint8)
    return seg, ood


def test_segment_truth_constructed():
    seg, ood = truth_case()
    t = segment_truth(seg, 5, ood)
    np.testing.assert_array_equal(
        t.kind, [IGNORED, TRUE_POSITIVE, FALSE_POSITIVE, FALSE_POSITIVE,
                 TRUE_POSITIVE])
    assert (IGNORED, FALSE_POSITIVE, TRUE_POSITIVE) == (-1, 0, 1)
    np.testing.assert_array_equal(t.id_pixels, [0, 3, 1, 2, 1])
    assert t.num_objects == 4
    assert t.num_id == 80 - 11 - 10
    pairs = sorted(map(tuple, t.touches.tolist()))
    assert [s for s, _ in pairs] == [1, 4, 4]  # 0-based segments
    assert pairs[1][1] != pairs[2][1]  # seg 5 touches two objects
    assert all(0 <= o < t.num_objects for _, o in pairs)
    touched = {o for _, o in pairs}
    assert t.num_objects - len(touched) == 1  # one missed object (FN)
    # the missed object is the one at (3, 9), (4, 8), (4, 9): every other
    # object shares a pixel with a segment
    objects, _ = ndimage.label(ood == 1, structure=np.ones((3, 3)))
    missed = ({int(x) for x in np.unique(objects[ood == 1])} -
              {o + 1 for o in touched})
    assert len(missed) == 1
    rows, cols = np.nonzero(objects == missed.pop())
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(3, 9), (4, 8),
                                                         (4, 9)]


def test_segment_truth_ignore_index_and_torch():
    seg, ood = truth_case()
    ood2 = ood.astype(np.int64)
    ood2[ood2 == 255] = -1
    t = segment_truth(seg, 5, torch.from_numpy(ood2), ignore_index=-1)
    ref = segment_truth(seg, 5, ood)
    np.testing.assert_array_equal(t.kind, ref.kind)
    np.testing.assert_array_equal(t.id_pixels, ref.id_pixels)
    np.testing.assert_array_equal(t.touches, ref.touches)
    assert (t.num_objects, t.num_id) == (ref.num_objects, ref.num_id)


def test_segment_truth_no_segments_no_objects():
    ood = np.zeros((4, 5), np.uint8)
    t = segment_truth(np.zeros((4, 5), np.int32), 0, ood)
    assert t.kind.shape == (0,) and t.id_pixels.shape == (0,)
    assert t.touches.shape == (0, 2)
    assert t.num_objects == 0 and t.num_id == 20


# --------------------------------------------------------------------------
# threshold, names, errors, image_segments
# --------------------------------------------------------------------------


def test_threshold_is_inclusive():
    score = np.zeros((3, 4), np.float32)
    score[0, 0] = 0.5
    score[2, 3] = np.nextafter(np.float32(0.5), np.float32(0))
    labels, n = label_segments(score, 0.5)
    assert n == 1 and labels[0, 0] == 1 and labels[2, 3] == 0
    labels, n = label_segments(torch.from_numpy(score), 0.4)
    assert n == 2


def test_feature_names():
    for q in (2, 3, 19):
        names = feature_names(q)
        assert len(names) == 25 + 2 * q == len(set(names))
        assert names[-2:] == ['C_h', 'C_w']
    # the paper's 46 metrics for q = 19 (appendix B, eq. 17) are columns
    paper = (['E_mean', 'V_mean', 'M_mean', 'S', 'S_rel', 'S_in_rel',
              'C_h', 'C_w'] + [f'N_{j}' for j in range(19)] +
             [f'P_{j}' for j in range(19)])
    assert len(paper) == 46 and set(paper) <= set(feature_names(19))


@pytest.mark.parametrize('q', [1, 0, 2.0, '3'])
def test_feature_names_invalid(q):
    with pytest.raises(ValueError, match='num_classes'):
        feature_names(q)


def test_errors():
    probs, score = hand_image()
    for bad in (probs[0], probs[None], probs[:1]):
        with pytest.raises(ValueError, match=r'\(q, H, W\)'):
            image_segments(bad, score, [0.5])
    with pytest.raises(ValueError) as exc:
        image_segments(probs, score[:, :8], [0.5])
    msg = str(exc.value)
    assert '(7, 8)' in msg and '(3, 7, 9)' in msg
    with pytest.raises(ValueError, match='score map'):
        label_segments(score[None], 0.5)
    ood = np.zeros((7, 9), np.uint8)
    ood[3, 3] = 7
    with pytest.raises(ValueError, match=r'\[7\]'):
        image_segments(probs, score, [0.5], ood)
    with pytest.raises(ValueError, match='differ in size'):
        image_segments(probs, score, [0.5], np.zeros((7, 8), np.uint8))
    labels, n = label_segments(score[:, :8], 0.5)
    with pytest.raises(ValueError, match='differ in size'):
        segment_features(pixel_measures(probs), labels, n)


def test_image_segments_equals_pieces():
    probs = random_probs(5, q=4, h=12, w=15)
    (e, _, _), _ = reference_pixel_measures(probs)
    rng = np.random.default_rng(5)
    ood = (rng.random((12, 15)) < 0.2).astype(np.uint8)
    ood[:2] = 255
    thresholds = [0.3, 0.45, 0.6]
    out = image_segments(torch.from_numpy(probs), torch.from_numpy(e),
                         thresholds, ood)
    assert [s.threshold for s in out] == thresholds
    measures = pixel_measures(probs)
    for s, t in zip(out, thresholds):
        labels, n = label_segments(e, t)
        assert s.num_segments == n
        np.testing.assert_array_equal(s.labels, labels)
        np.testing.assert_array_equal(
            s.features, segment_features(measures, labels, n))
        truth = segment_truth(labels, n, ood)
        for field in ('kind', 'id_pixels', 'touches'):
            np.testing.assert_array_equal(getattr(s.truth, field),
                                          getattr(truth, field))
        assert (s.truth.num_objects, s.truth.num_id) == (truth.num_objects,
                                                         truth.num_id)
    assert sum(s.num_segments for s in out) > 3
    assert all(s.truth is None for s in image_segments(probs, e, [0.3]))
    assert image_segments(probs, e, []) == []


def test_truth_refuses_labels_of_another_shape_with_the_same_size():
    labels = np.zeros((4, 6), np.int32)
    labels[0, 0] = 1
    for bad in (np.zeros((6, 4), np.uint8), np.zeros(24, np.uint8)):
        with pytest.raises(ValueError, match='differ in size'):
            segment_truth(labels, 1, bad)
    # mmseg's (1, H, W) label maps are fine
    t = segment_truth(labels, 1, np.zeros((1, 4, 6), np.uint8))
    assert t.kind.tolist() == [0]
