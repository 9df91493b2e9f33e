"""Re-ranking segmentation proposals with a network's soft output (SegNet
paper, sec. 3.3-4, eq. 17), and the candidate sets it picks from.

The SegNet/UOI paper measures its losses by how well the network's coarse
soft output *picks* the best of a few (5-30) full-resolution segmentation
proposals: its Table 2 and Fig. 6 (SegNet-CE 47.4, SegNet-UOI 48.5,
UOI-CE 48.7 mIoU on VOC 2012 val) are the mIoU of the picked proposals, not
of the network's own argmax. This module holds that measurement as pure
functions on arrays:

- :func:`soft_segmentation`: a hard segmentation down-sampled to a grid of
  patch class distributions ("we down-sample each DivMBest segmentation to
  13 x 13 soft segmentations", sec. 4);
- :func:`reranking_scores`: eq. 17 for every candidate;
- :func:`segment_flip_candidates`: the candidate set this project builds in
  place of the paper's O2P + DivMBest proposals (which cannot be rebuilt
  here), from a proposal model's soft output;
- :class:`ConfusionAccumulator` and :func:`image_miou`: corpus mIoU of the
  picks and the per-image score that defines the oracle pick.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX

__all__ = [
    'soft_segmentation', 'pooled_probabilities', 'reranking_scores',
    'segment_flip_candidates', 'image_miou', 'ConfusionAccumulator'
]


def _grid(grid) -> Tuple[int, int]:
    gh, gw = (grid, grid) if np.isscalar(grid) else tuple(grid)
    if int(gh) != gh or int(gw) != gw or gh < 1 or gw < 1:
        raise InvalidValueError(
            f'`grid` must be a positive int or (h, w), got '
            f'{grid!r}')
    return int(gh), int(gw)


def _patch_bounds(size: int, cells: int) -> np.ndarray:
    if cells > size:
        raise InvalidValueError(
            f'a grid of {cells} cells is finer than the image '
            f'side of {size} pixels')
    return np.linspace(0, size, cells + 1).round().astype(int)


def _pool(maps: np.ndarray, grid) -> np.ndarray:
    """Means of ``maps`` ``(K, H, W)`` over the cells of ``grid`` (cell
    edges at ``round(linspace(0, side, cells + 1))``): ``(gh, gw, K)``."""
    gh, gw = _grid(grid)
    ys = _patch_bounds(maps.shape[1], gh)
    xs = _patch_bounds(maps.shape[2], gw)
    # sums over cells from the 2-D cumulative sums: exact, one pass
    c = np.zeros((maps.shape[0], maps.shape[1] + 1, maps.shape[2] + 1))
    c[:, 1:, 1:] = maps.cumsum(1, dtype=np.float64).cumsum(2)
    s = (c[:, ys[1:]][:, :, xs[1:]] - c[:, ys[:-1]][:, :, xs[1:]] -
         c[:, ys[1:]][:, :, xs[:-1]] + c[:, ys[:-1]][:, :, xs[:-1]])
    area = np.outer(np.diff(ys), np.diff(xs))
    return (s / area).transpose(1, 2, 0)


def soft_segmentation(labels: np.ndarray, num_classes: int,
                      grid=13) -> np.ndarray:
    """The class distribution of each grid cell of a hard segmentation.

    Args:
        labels: ``(H, W)`` class indices in ``[0, num_classes)`` (a
            candidate covers every pixel: no void).
        num_classes: ``K``.
        grid: Cells ``(gh, gw)`` or one int for both; the paper's 13.

    Returns:
        np.ndarray: ``(gh, gw, K)`` float64, each cell summing to 1.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InvalidValueError(f'labels must be (H, W), got {labels.shape}')
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise InvalidValueError(f'labels must lie in [0, {num_classes}), got '
                                f'[{labels.min()}, {labels.max()}]')
    onehot = np.arange(num_classes)[:, None, None] == labels[None]
    return _pool(onehot, grid)


def pooled_probabilities(prob: np.ndarray, grid=13) -> np.ndarray:
    """A network's softmax ``(K, H, W)`` averaged over each grid cell:
    ``(gh, gw, K)``, the soft output ``p^`` of eq. 17 at the grid.

    Args:
        prob: Class probabilities ``(K, H, W)``, cast to float64.
        grid: Cells ``(gh, gw)`` or one int for both; the paper's 13.
            Cell edges are at ``round(linspace(0, side, cells + 1))``.

    Returns:
        np.ndarray: ``(gh, gw, K)`` float64, each cell the mean of its
        pixels' distributions.

    Raises:
        ValueError: ``prob`` is not 3-D, or the grid is finer than the
            image.
    """
    prob = np.asarray(prob, dtype=np.float64)
    if prob.ndim != 3:
        raise InvalidValueError(f'prob must be (K, H, W), got {prob.shape}')
    return _pool(prob, grid)


def reranking_scores(prob: np.ndarray,
                     candidates: Sequence[np.ndarray],
                     grid=13,
                     background_index: Optional[int] = 0,
                     background_penalty: float = 0.02,
                     eps: float = 1e-3) -> np.ndarray:
    """Eq. 17 of the SegNet paper for each candidate (lower = better).

    ``S(m) = sum_i [KL(p^_i || q^m_i) + KL(q^m_i || p^_i) +
    0.02 q^m_{i,0}]`` over the grid cells ``i``, with ``p^_i`` the
    network's soft output and ``q^m_i`` candidate ``m``'s class
    distribution in cell ``i`` (:func:`soft_segmentation`). The paper's
    ``0.02 q^m_{i,0}`` penalises candidates that label much background
    (VOC's class 0, "frequently overpredicted").

    Zeros: a candidate's cell distribution is 0 for every class absent
    from the cell, where a KL is infinite; the paper does not say how it
    handles them. Here both distributions are smoothed as
    ``(1 - eps) d + eps / K`` before the KLs (this project's choice).

    Args:
        prob: The network's softmax ``(K, H, W)`` at the candidates'
            resolution.
        candidates: ``M`` hard segmentations ``(H, W)``.
        grid: Cells of the soft segmentations; the paper's 13 x 13.
        background_index: The class the penalty counts; ``None``: none.
        background_penalty: Its factor (0.02 in the paper).
        eps: Smoothing of both distributions, in ``(0, 1)``.

    Returns:
        np.ndarray: ``(M,)`` float64 scores; :func:`numpy.argmin` picks.
    """
    if not 0 < eps < 1:
        raise InvalidValueError(f'`eps` must be in (0, 1), got {eps}')
    if background_penalty < 0:
        raise InvalidValueError('`background_penalty` must be >= 0, got '
                                f'{background_penalty}')
    prob = np.asarray(prob, dtype=np.float64)
    k = prob.shape[0]
    if background_index is not None and not 0 <= background_index < k:
        raise InvalidValueError(f'`background_index` must be in [0, {k}), got '
                                f'{background_index}')
    if len(candidates) == 0:
        raise InvalidValueError('no candidates to rank')
    p = (1 - eps) * pooled_probabilities(prob, grid) + eps / k
    scores = []
    for c in candidates:
        if np.shape(c) != prob.shape[1:]:
            raise InvalidValueError(
                f'a candidate of shape {np.shape(c)} for a '
                f'soft output of {prob.shape[1:]}')
        hard = soft_segmentation(c, k, grid)
        q = (1 - eps) * hard + eps / k
        kl = (p * np.log(p / q)).sum() + (q * np.log(q / p)).sum()
        if background_index is not None:
            kl += background_penalty * hard[..., background_index].sum()
        scores.append(kl)
    return np.asarray(scores)


def segment_flip_candidates(prob: np.ndarray,
                            num_candidates: int = 30,
                            min_pixels: int = 1) -> List[np.ndarray]:
    """A diverse set of full-resolution segmentations from one soft output.

    The paper's proposals (O2P + DivMBest: greedily pasted CPMC segments,
    then M-best solutions of a CRF with a Hamming diversity term) cannot be
    rebuilt here; this is their analogue at the level of segments. The
    first candidate is the argmax ``y`` of ``prob``. Its segments are the
    8-connected components of each class of ``y``; a segment's *margin* is
    the gap between its best and second-best mean class probability, and
    its *runner-up* that second class. Candidate ``j`` relabels a set of
    segments to their runner-ups - merging an object into the surrounding
    background or another class, or relabelling it - taking the sets of
    one, two or (with at most 12 segments) three segments in order of
    their summed margin, smallest first, as DivMBest's next solutions flip
    the cheapest disagreements first. Identical candidates are kept once.

    Args:
        prob: Softmax of the proposal model ``(K, H, W)``.
        num_candidates: At most this many candidates (fewer if the
            segments do not give as many distinct ones).
        min_pixels: Segments smaller than this are never flipped alone.

    Returns:
        list: ``(H, W)`` int64 candidates, the argmax first.
    """
    if num_candidates < 1:
        raise InvalidValueError(f'`num_candidates` must be >= 1, got '
                                f'{num_candidates}')
    prob = np.asarray(prob, dtype=np.float64)
    y = prob.argmax(0)
    segments, runner_up, margin = [], [], []
    eight = np.ones((3, 3), bool)
    for k in np.unique(y):
        comp, n = ndimage.label(y == k, structure=eight)
        for s in range(1, n + 1):
            mask = comp == s
            if mask.sum() < min_pixels:
                continue
            mean = prob[:, mask].mean(1)
            order = np.argsort(-mean)
            segments.append(mask)
            runner_up.append(int(order[1]))
            margin.append(float(mean[order[0]] - mean[order[1]]))
    out, seen = [y], {y.tobytes()}
    # A set holding a segment beyond the num_candidates smallest margins
    # sums to more than each of those segments alone, whose single flips
    # already give num_candidates distinct candidates: it is never reached.
    keep = np.argsort(margin, kind='stable')[:num_candidates].tolist()
    n = len(keep)
    sets = [(i, ) for i in keep]
    sets += [(keep[a], keep[b]) for a in range(n) for b in range(a + 1, n)]
    if n <= 12:  # triples only while they are few (220 at most)
        sets += [(keep[a], keep[b], keep[c]) for a in range(n)
                 for b in range(a + 1, n) for c in range(b + 1, n)]
    sets.sort(key=lambda t: sum(margin[i] for i in t))  # stable
    for flip in sets:
        if len(out) >= num_candidates:
            break
        c = y.copy()
        for i in flip:
            c[segments[i]] = runner_up[i]
        key = c.tobytes()
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def image_miou(pred: np.ndarray, label: np.ndarray, num_classes: int,
               ignore_index: int = IGNORE_INDEX) -> float:
    """One image's mIoU over the classes present in its label or
    prediction (valid pixels only): the per-image quality by which the
    oracle picks its candidate.

    Args:
        pred: Predicted class indices ``(H, W)``, int in
            ``[0, num_classes)``.
        label: Ground-truth class indices ``(H, W)``, with
            ``ignore_index`` for void.
        num_classes: ``K``.
        ignore_index: Void label; those pixels are left out.

    Returns:
        float: The mean IoU as a fraction in ``[0, 1]`` (not percent),
        NaN if no valid pixel.
    """
    valid = label != ignore_index
    p, g = pred[valid], label[valid]
    inter = np.bincount(g[p == g], minlength=num_classes)
    area_p = np.bincount(p, minlength=num_classes)
    area_g = np.bincount(g, minlength=num_classes)
    union = area_p + area_g - inter
    present = union > 0
    return float((inter[present] / union[present]).mean()) \
        if present.any() else float('nan')


class ConfusionAccumulator:
    """Corpus mIoU of a stream of (prediction, label) pairs, as mmseg's
    ``IoUMetric`` computes it: per-class IoU from the summed intersection
    and union over all images, averaged over the classes whose union is not
    empty.

    Memory: ``3 K`` integers.

    Args:
        num_classes: ``K``.
        ignore_index: Void label; those pixels are not counted.
    """

    def __init__(self, num_classes: int,
                 ignore_index: int = IGNORE_INDEX):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.inter = np.zeros(num_classes, np.int64)
        self.area_pred = np.zeros(num_classes, np.int64)
        self.area_label = np.zeros(num_classes, np.int64)

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Add one image.

        Args:
            pred: Predicted class indices ``(H, W)``, int.
            label: Ground-truth class indices ``(H, W)``, int, with
                ``ignore_index`` for void.
        """
        if np.shape(pred) != np.shape(label):
            raise InvalidValueError(f'prediction {np.shape(pred)} and label '
                                    f'{np.shape(label)} differ in shape')
        valid = label != self.ignore_index
        p, g = np.asarray(pred)[valid], np.asarray(label)[valid]
        k = self.num_classes
        self.inter += np.bincount(g[p == g], minlength=k)[:k]
        self.area_pred += np.bincount(p, minlength=k)[:k]
        self.area_label += np.bincount(g, minlength=k)[:k]

    def iou(self) -> np.ndarray:
        """Per-class IoU in percent; NaN for a class neither labelled nor
        predicted (mmseg's ``IoUMetric``: intersection / union)."""
        union = self.area_pred + self.area_label - self.inter
        with np.errstate(invalid='ignore', divide='ignore'):
            return 100.0 * self.inter / union

    def miou(self) -> float:
        """Mean of :meth:`iou` over the classes that are not NaN, in
        percent."""
        return float(np.nanmean(self.iou()))
