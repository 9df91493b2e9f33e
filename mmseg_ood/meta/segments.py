"""OOD segments of one image: connected components above a threshold, their
hand-crafted features and their ground truth.

Entropy-maximization paper (Chan, Rottmann & Gottschalk, ICCV 2021),
sec. 3.2, 4 and appendix B: the pixels whose OOD score reaches ``t`` (eq. 7)
form the OOD prediction; its connected components (8-connectivity) are the
OOD *segments* ``k``. Each segment gets a row of features aggregated from
the softmax output of the same forward pass (appendix B), which a meta
classifier (:mod:`~mmseg_ood.meta.classifier`) reads to tell true
from false OOD detections (eq. 9).

Features (:func:`feature_names`; ``*`` marks the paper's 46 metrics for
``q = 19``, the others are MetaSeg's (Rottmann et al. 2020, the paper's
[41]) that the paper's segment definition inherits):

============================  ===============================================
name                          definition (``k``: the segment's pixels)
============================  ===============================================
``E_mean`` *                  mean over ``k`` of the normalized entropy
                              ``E = -(1 / log q) sum_j p_j log p_j`` (eq. 11)
``E_var``                     its variance over ``k``
``E_in_mean``, ``E_in_var``   the same over the interior ``k_in`` (pixels
                              whose 8 neighbours all lie in ``k``)
``E_bd_mean``, ``E_bd_var``   the same over the boundary
                              ``k_bd = k \\ k_in``
``V_*`` (``V_mean`` \\*)       the same six for the variation ratio
                              ``V = 1 - max_j p_j`` (eq. 12)
``M_*`` (``M_mean`` \\*)       the same six for the probability margin
                              ``M = V + second largest p_j`` (eq. 13)
``S`` *                       size ``|k|``
``S_in``, ``S_bd``            ``|k_in|``, ``|k_bd|``
``S_rel`` *                   ``S / S_bd`` (eq. 14)
``S_in_rel`` *                ``S_in / S_bd`` (eq. 14)
``N_0`` ... ``N_{q-1}`` *     fraction of the neighbourhood ``k_nb`` (pixels
                              outside ``k`` within one step, 8-connectivity)
                              whose predicted class is ``j`` (eq. 15)
``P_0`` ... ``P_{q-1}`` *     mean softmax probability of class ``j`` over
                              ``k``
``C_h``, ``C_w`` *            centroid (eq. 16), divided by the image height
                              and width
============================  ===============================================

Deviations from the paper, and why:

- The variances and the interior / boundary statistics are added (the
  issue's list; MetaSeg's features, which appendix B's definitions of
  ``k_in`` and ``k_bd`` come from); ``S_in`` and ``S_bd`` are inputs too.
- The centroid is relative (``C_h / H``, ``C_w / W``), so that a classifier
  fitted at one image size applies at another.
- The interior of an empty region (a segment with no interior pixel) has
  mean and variance 0, as MetaSeg sets it; ``S_in = 0`` tells it apart.
  A segment that covers the whole image has an empty neighbourhood: its
  ``N_j`` are 0.
- Pixels outside the image are not in ``k``: segment pixels on the image
  border are boundary pixels (appendix B's definition, read literally).
- Eq. 11 prints ``1/q``; the text (sec. 3.2) divides by ``log q``, as the
  package's ``entropy`` scorer does: ``E`` lies in ``[0, 1]``.

Ground truth (sec. 4, eq. 8-10 and Fig. 6): a segment is a true positive if
it contains a ground-truth OOD pixel, a false positive if not, and ignored
if all its pixels are void. A ground-truth OOD object (a connected
component, 8-connectivity, of the OOD pixels) is missed (FN) if no segment
touches it. The ID-pixel miss rate (eq. 10's road miss rate, for labels
whose ID pixels are the road, as in LostAndFound and SMIYC) counts ID
pixels inside segments.

Everything is vectorised over segments: one labelling per threshold, then
``np.bincount`` aggregation; memory is a few maps of the image's size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import torch
from scipy import ndimage

from ..errors import InvalidValueError
from ..evaluation.functional.inputs import flat_ood_labels, to_numpy
from ..labels import IGNORE_INDEX

__all__ = ['DISPERSION_MEASURES', 'feature_names', 'paper_feature_names',
           'PixelMeasures',
           'pixel_measures', 'label_segments', 'segment_features',
           'SegmentTruth', 'segment_truth', 'ImageSegments',
           'image_segments', 'TRUE_POSITIVE', 'FALSE_POSITIVE', 'IGNORED']

#: The pixel-wise dispersion measures (appendix B, eq. 11-13).
DISPERSION_MEASURES = ('E', 'V', 'M')
_REGIONS = ('', '_in', '_bd')
_EIGHT = np.ones((3, 3), bool)  # 8-connectivity


def feature_names(num_classes: int) -> List[str]:
    """The feature names, in column order (see the module's table).

    Args:
        num_classes: ``q``, the model's number of classes (>= 2); it sets
            the number of ``N_j`` and ``P_j`` columns.

    Returns:
        list: ``F = 25 + 2 q`` names.

    Raises:
        ValueError: ``num_classes`` is not an int >= 2.
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise InvalidValueError(f'`num_classes` must be an int >= 2, got '
                                f'{num_classes!r}')
    names = [f'{m}{r}_{s}' for m in DISPERSION_MEASURES for r in _REGIONS
             for s in ('mean', 'var')]
    names += ['S', 'S_in', 'S_bd', 'S_rel', 'S_in_rel']
    names += [f'N_{j}' for j in range(num_classes)]
    names += [f'P_{j}' for j in range(num_classes)]
    names += ['C_h', 'C_w']
    return names


def paper_feature_names(num_classes: int) -> List[str]:
    """The paper's features (marked ``*`` in the module's table: 46 for
    ``q = 19``), in :func:`feature_names`' order.

    Args:
        num_classes: ``q``, the model's number of classes (>= 2).

    Returns:
        list: ``8 + 2 q`` names.
    """
    paper = {'E_mean', 'V_mean', 'M_mean', 'S', 'S_rel', 'S_in_rel', 'C_h',
             'C_w'}
    return [n for n in feature_names(num_classes)
            if n in paper or n[:2] in ('N_', 'P_')]


@dataclass
class PixelMeasures:
    """Pixel-wise inputs of the features (appendix B), computed by
    :func:`pixel_measures`.

    Attributes:
        probs: Softmax probabilities ``(q, H, W)``, float32.
        E: Normalized entropy ``(H, W)``, float32 in ``[0, 1]`` (eq. 11,
            divided by ``log q``).
        V: Variation ratio ``1 - max_j p_j`` ``(H, W)``, float32 (eq. 12).
        M: Probability margin ``V + second largest p_j`` ``(H, W)``,
            float32 (eq. 13).
        pred: The predicted (argmax) class ``(H, W)``, int64; the first of
            tied maxima, as mmseg predicts.
    """
    probs: np.ndarray
    E: np.ndarray
    V: np.ndarray
    M: np.ndarray
    pred: np.ndarray

    @property
    def num_classes(self) -> int:
        """``q``."""
        return self.probs.shape[0]


def pixel_measures(probs) -> PixelMeasures:
    """Normalized entropy, variation ratio, probability margin (eq. 11-13)
    and the predicted class of softmax probabilities ``(q, H, W)``.

    Args:
        probs: Softmax probabilities ``(q, H, W)``, ``q >= 2``, tensor or
            array (computed in float32).

    Returns:
        PixelMeasures: The four maps and ``probs`` as float32 arrays.

    Raises:
        ValueError: ``probs`` is not ``(q, H, W)`` with ``q >= 2``.
    """
    p = torch.as_tensor(to_numpy(probs)).float()
    if p.dim() != 3 or p.shape[0] < 2:
        raise InvalidValueError(
            'probabilities must be (q, H, W) with q >= 2, got '
            f'shape {tuple(p.shape)}')
    top = p.topk(2, dim=0).values
    pred = p.argmax(dim=0)  # the first of tied maxima, as mmseg predicts
    ent = -torch.special.xlogy(p, p).sum(dim=0) / np.log(p.shape[0])
    v = 1.0 - top[0]
    return PixelMeasures(probs=p.numpy(), E=ent.numpy(), V=v.numpy(),
                         M=(v + top[1]).numpy(), pred=pred.numpy())


def label_segments(score, threshold: float):
    """Connected components (8-connectivity) of ``score >= threshold``
    (eq. 7): ``(labels, n)``, ``labels`` int32 ``(H, W)`` with 0 outside
    and ``1..n`` in the raster order of each segment's first pixel.

    Args:
        score: OOD score map ``(H, W)``, higher = more OOD.
        threshold: The segment threshold ``t``; pixels with ``score >= t``
            are OOD.

    Returns:
        tuple: ``(labels, n)``.

    Raises:
        ValueError: ``score`` is not 2-D.
    """
    s = to_numpy(score)
    if s.ndim != 2:
        raise InvalidValueError(
            f'score map must be (H, W), got shape {s.shape}')
    labels, n = ndimage.label(s >= threshold, structure=_EIGHT)
    return labels.astype(np.int32, copy=False), int(n)


def _mean_var(values: np.ndarray, seg: np.ndarray, n: int, count: np.ndarray):
    """Per-segment mean and (population) variance, two-pass, float64; 0
    where ``count`` is 0."""
    v = values.astype(np.float64)
    safe = np.maximum(count, 1)
    mean = np.bincount(seg, v, n + 1)[1:] / safe
    dev = v - mean[seg - 1]
    var = np.bincount(seg, dev * dev, n + 1)[1:] / safe
    return mean, var


def _neighbourhood_classes(labels: np.ndarray, n: int, pred: np.ndarray,
                           num_classes: int) -> np.ndarray:
    """``(n, q)`` counts of neighbourhood pixels by predicted class, each
    pixel once per segment it neighbours (eq. 15)."""
    mask = labels > 0
    ring = ndimage.binary_dilation(mask, structure=_EIGHT) & ~mask
    ys, xs = np.nonzero(ring)
    if ys.size == 0:
        return np.zeros((n, num_classes), np.int64)
    padded = np.pad(labels, 1)
    around = np.stack([padded[ys + 1 + dy, xs + 1 + dx]
                       for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                       if dy or dx])                       # (8, r)
    around.sort(axis=0)
    first = np.ones_like(around, bool)
    first[1:] = around[1:] != around[:-1]
    take = first & (around > 0)                            # each segment once
    seg = around[take].astype(np.int64)
    cls = np.broadcast_to(pred[ys, xs], around.shape)[take].astype(np.int64)
    counts = np.bincount((seg - 1) * num_classes + cls,
                         minlength=n * num_classes)
    return counts.reshape(n, num_classes)


def segment_features(measures: PixelMeasures, labels: np.ndarray,
                     n: int) -> np.ndarray:
    """The feature rows ``(n, F)`` (float64) of the segments ``1..n`` of
    ``labels``, columns as :func:`feature_names`.

    Args:
        measures: The image's :class:`PixelMeasures`.
        labels: Segment labels ``(H, W)`` from :func:`label_segments`, 0
            outside the segments.
        n: The number of segments.

    Returns:
        np.ndarray: ``(n, F)`` float64 features, ``F = 25 + 2 q``.

    Raises:
        ValueError: ``labels`` and the measures differ in size.
    """
    q = measures.num_classes
    h, w = labels.shape
    if measures.E.shape != (h, w):
        raise InvalidValueError(
            f'segment labels {labels.shape} and probabilities '
            f'{measures.probs.shape} differ in size')
    out = np.zeros((n, len(feature_names(q))), np.float64)
    if n == 0:
        return out
    flat = labels.reshape(-1)
    idx = np.flatnonzero(flat)
    seg = flat[idx].astype(np.int64)
    interior = ndimage.binary_erosion(labels > 0, structure=_EIGHT,
                                      border_value=0).reshape(-1)[idx]
    size = np.bincount(seg, minlength=n + 1)[1:].astype(np.float64)
    size_in = np.bincount(seg[interior], minlength=n + 1)[1:].astype(
        np.float64)
    size_bd = size - size_in
    col = 0
    for name in DISPERSION_MEASURES:
        values = getattr(measures, name).reshape(-1)[idx]
        for region, count in ((slice(None), size), (interior, size_in),
                              (~interior, size_bd)):
            out[:, col], out[:, col + 1] = _mean_var(
                values[region], seg[region], n, count)
            col += 2
    out[:, col:col + 5] = np.stack(
        [size, size_in, size_bd, size / size_bd, size_in / size_bd], 1)
    col += 5
    nb = _neighbourhood_classes(labels, n, measures.pred, q)
    nb_size = nb.sum(axis=1, keepdims=True)
    out[:, col:col + q] = nb / np.maximum(nb_size, 1)
    col += q
    probs = torch.from_numpy(measures.probs.reshape(q, -1)[:, idx].T)
    sums = torch.zeros(n + 1, q, dtype=torch.float64).index_add_(
        0, torch.from_numpy(seg), probs.double())
    out[:, col:col + q] = sums[1:].numpy() / size[:, None]
    col += q
    ys, xs = np.divmod(idx, w)
    out[:, col] = np.bincount(seg, ys, n + 1)[1:] / size / h
    out[:, col + 1] = np.bincount(seg, xs, n + 1)[1:] / size / w
    return out


#: Segment kinds of :class:`SegmentTruth`.
FALSE_POSITIVE, TRUE_POSITIVE, IGNORED = 0, 1, -1


@dataclass
class SegmentTruth:
    """Ground truth of one image's segments.

    Attributes:
        kind: ``(n,)`` int8: :data:`TRUE_POSITIVE` (1, touches an OOD
            pixel), :data:`FALSE_POSITIVE` (0) or :data:`IGNORED` (-1, all
            pixels void).
        id_pixels: ``(n,)`` ID pixels inside each segment.
        num_objects: Ground-truth OOD objects (8-connected components of
            the OOD pixels).
        touches: ``(m, 2)`` pairs ``(segment, object)``, 0-based, of every
            segment that touches an object.
        num_id: ID pixels in the image.
    """
    kind: np.ndarray
    id_pixels: np.ndarray
    num_objects: int
    touches: np.ndarray
    num_id: int


def segment_truth(labels: np.ndarray, n: int, ood_labels,
                  ignore_index: int = IGNORE_INDEX) -> SegmentTruth:
    """Match the segments ``1..n`` of ``labels`` with the OOD ground truth
    ``ood_labels`` ``(H, W)`` (0 ID, 1 OOD, ``ignore_index`` void).

    Args:
        labels: Segment labels ``(H, W)`` from :func:`label_segments`.
        n: The number of segments.
        ood_labels: OOD ground truth ``(H, W)`` (or ``(1, H, W)``, as mmseg
            keeps it): 0 ID, 1 OOD, ``ignore_index`` void.
        ignore_index: Void label.

    Returns:
        SegmentTruth: Kind, ID-pixel count and touched objects of each
        segment.

    Raises:
        ValueError: ``ood_labels`` differs in size from ``labels``, or
            holds a label other than 0, 1 and ``ignore_index``.
    """
    shape = to_numpy(ood_labels).shape
    while len(shape) > 2 and shape[0] == 1:  # (1, H, W) as mmseg keeps it
        shape = shape[1:]
    if shape != labels.shape:
        raise InvalidValueError(f'OOD labels {to_numpy(ood_labels).shape} and '
                                f'score map {labels.shape} differ in size')
    gt = flat_ood_labels(ood_labels, ignore_index, 'OOD segments')
    objects, num_objects = ndimage.label(gt.reshape(labels.shape) == 1,
                                         structure=_EIGHT)
    flat = labels.reshape(-1)
    idx = np.flatnonzero(flat)
    seg = flat[idx].astype(np.int64)
    g = gt[idx]
    counts = [np.bincount(seg[g == v], minlength=n + 1)[1:]
              for v in (0, 1, 2)]  # ID, OOD, void
    kind = np.where(counts[1] > 0, TRUE_POSITIVE,
                    np.where(counts[0] > 0, FALSE_POSITIVE, IGNORED))
    obj = objects.reshape(-1)[idx]
    hit = obj > 0
    pairs = np.unique((seg[hit] - 1) * (num_objects + 1) + obj[hit] - 1)
    touches = np.stack(np.divmod(pairs, num_objects + 1), 1).astype(np.int64)
    return SegmentTruth(kind=kind.astype(np.int8),
                        id_pixels=counts[0].astype(np.int64),
                        num_objects=int(num_objects),
                        touches=touches.reshape(-1, 2),
                        num_id=int((gt == 0).sum()))


@dataclass
class ImageSegments:
    """The segments of one image at one threshold: features, and the ground
    truth when OOD labels were given (else ``None``).

    Attributes:
        threshold: The segment threshold ``t`` (eq. 7).
        labels: Segment labels ``(H, W)`` int32, 0 outside, ``1..n``.
        features: ``(n, F)`` float64 feature rows
            (:func:`segment_features`).
        truth: The segments' :class:`SegmentTruth`, or ``None`` without OOD
            labels.
        num_classes: ``q``, the model's number of classes.
    """
    threshold: float
    labels: np.ndarray
    features: np.ndarray
    truth: 'SegmentTruth | None'
    num_classes: int

    @property
    def num_segments(self) -> int:
        """``n``."""
        return self.features.shape[0]


def image_segments(probs, score, thresholds: Sequence[float],
                   ood_labels=None,
                   ignore_index: int = IGNORE_INDEX) -> List[ImageSegments]:
    """Segments, features and (with ``ood_labels``) ground truth of one
    image at each threshold; the pixel measures are computed once.

    Args:
        probs: Softmax probabilities ``(q, H, W)``.
        score: OOD score map ``(H, W)``, higher = more OOD.
        thresholds: Segment thresholds ``t`` (eq. 7).
        ood_labels: ``(H, W)`` 0 / 1 / ``ignore_index``, or ``None``.
        ignore_index: Void label of ``ood_labels``.

    Returns:
        list: One :class:`ImageSegments` per threshold, in the order given.

    Raises:
        ValueError: ``score`` and ``probs`` differ in size.
    """
    measures = pixel_measures(probs)
    score = to_numpy(score)
    if score.shape != measures.E.shape:
        raise InvalidValueError(f'score map {score.shape} and probabilities '
                                f'{measures.probs.shape} differ in size')
    out = []
    for t in thresholds:
        labels, n = label_segments(score, t)
        truth = None if ood_labels is None else segment_truth(
            labels, n, ood_labels, ignore_index)
        out.append(ImageSegments(float(t), labels,
                                 segment_features(measures, labels, n),
                                 truth, measures.num_classes))
    return out
