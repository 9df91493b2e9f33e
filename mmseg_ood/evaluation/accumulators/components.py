"""Component-level OOD metrics of the Segment-Me-If-You-Can benchmark.

For one image with OOD labels ``L`` (0 ID, 1 OOD, 255 void) and a binary
prediction ``score >= threshold``:

1. Predictions on void pixels are dropped; connected components of the
   prediction and of ``L == 1`` use 8-connectivity (OpenCV's
   ``connectedComponents``: the components of ``scipy.ndimage.label`` with
   a 3x3 structure, several times faster, numbered in another order).
2. Predicted components smaller than ``min_pred_size`` pixels are removed;
   ground-truth components smaller than ``min_gt_size`` become void.
3. Everything below is counted inside the region of interest (non-void).
   For a ground-truth component ``k``, ``K^(k)`` is the union of predicted
   components that intersect it and ``A(k)`` the pixels of the *other*
   ground-truth components:
   ``sIoU(k) = |k ∩ K^(k)| / |(k ∪ K^(k)) \\ A(k)|`` (0 if nothing hits k).
   For a predicted component ``k^``, ``K(k^)`` is the union of ground-truth
   components that intersect it: ``PPV(k^) = |k^ ∩ K(k^)| / |k^|``.
4. At each ``tau``: TP = #{k : sIoU(k) >= tau}, FN = the other ground-truth
   components, FP = #{k^ : PPV(k^) < tau};
   ``F1(tau) = 2 TP / (2 TP + FN + FP)``.

Over a dataset, sIoU and PPV are averaged over all components of all images
(pooled), TP / FN / FP are summed per tau, and mean F1 averages F1 over
``tau in linspace(0.25, 0.75, 11)``. Size filters: AnomalyTrack 500 / 100,
ObstacleTrack 50 / 10 (predicted / ground truth).

Deviation: SMIYC binarizes with ``score > threshold`` while its pixel curve
counts ``score >= threshold``; we use ``>=`` in both, so the component
threshold is exactly the best-F1 pixel threshold. ``strict=True`` with
``SMIYC_TAUS`` and :class:`SMIYCBinnedCurve`'s threshold reproduces the
benchmark's own numbers instead (see ``docs/en/evaluation/smiyc_parity.md``).
"""
from __future__ import annotations

import warnings
from fractions import Fraction
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX
from ..functional.inputs import VOID, flat_scores_and_labels, to_numpy
from ..functional.roc_pr import (SMIYC_FRAME_BINS, UndefinedMetricWarning,
                                 smiyc_best_f1, smiyc_frame_bins)
from .base import Accumulator

DEFAULT_TAUS = tuple(np.round(np.linspace(0.25, 0.75, 11), 10).tolist())
#: The benchmark's own tau values, ``np.linspace(0.25, 0.75, 11)`` unrounded
#: (the 8th is 0.6000000000000001): for its numbers exactly.
SMIYC_TAUS = tuple(np.linspace(0.25, 0.75, 11).tolist())
SIZE_PRESETS = {'anomaly_track': (500, 100), 'obstacle_track': (50, 10)}


def label_components(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """8-connected components of a bool ``(H, W)`` mask.

    Args:
        mask: ``(H, W)`` array, read as bool (non-zero = in a component).

    Returns:
        tuple: int32 ``(H, W)`` labels (0 = background, components 1 to n)
        and n.
    """
    if mask.size == 0:
        return np.zeros(mask.shape, np.int32), 0
    n, cc = cv2.connectedComponents(
        np.ascontiguousarray(mask, dtype=bool).view(np.uint8),
        connectivity=8, ltype=cv2.CV_32S)
    return cc, n - 1


class GroundTruthComponents:
    """The ground-truth side of :func:`image_component_stats` for one label
    map: computed once, shared by every scorer and threshold of the image.

    Args:
        labels: ``(H, W)`` 0 / 1 / ``ignore_index``.
        min_gt_size: Ground-truth components smaller than this become void.
        ignore_index: Void label.

    Attributes:
        shape: ``(H, W)``.
        valid: ``(H, W)`` bool, not void (before the size filter).
        num: Number of ground-truth components (before the size filter).
        index: Flat indices of the OOD pixels.
        component: Their component, 1 to ``num`` (int64).
        small: ``(num + 1,)`` bool, the components the filter makes void
            (entry 0, no component, is False).
    """

    def __init__(self, labels, min_gt_size: int = 100,
                 ignore_index: int = IGNORE_INDEX):
        lab = to_numpy(labels)
        if lab.ndim != 2:
            raise InvalidValueError(f'labels must be (H, W), got {lab.shape}')
        self.shape = lab.shape
        self.min_gt_size = int(min_gt_size)
        self.valid = lab != ignore_index
        ood = lab == 1
        cc, self.num = label_components(ood)
        self.index = np.flatnonzero(ood)
        self.component = cc.reshape(-1)[self.index].astype(np.int64)
        sizes = np.bincount(self.component, minlength=self.num + 1)
        self.small = sizes < min_gt_size
        self.small[0] = False


def image_component_stats(scores, labels, threshold: float,
                          min_pred_size: int = 500, min_gt_size: int = 100,
                          ignore_index: int = IGNORE_INDEX,
                          taus: Sequence[float] = DEFAULT_TAUS,
                          gt: Optional[GroundTruthComponents] = None,
                          strict: bool = False) -> dict:
    """Per-image sums behind sIoU, PPV and F1 (see the module docstring).

    Args:
        scores: ``(H, W)`` OOD scores.
        labels: ``(H, W)`` 0 / 1 / ``ignore_index``; not read if ``gt`` is
            given.
        threshold: Predict OOD where ``scores >= threshold`` (``>`` if
            ``strict``).
        min_pred_size: Predicted components smaller than this many pixels
            are removed (SMIYC AnomalyTrack: 500, ObstacleTrack: 50).
        min_gt_size: Ground-truth components smaller than this many pixels
            become void (AnomalyTrack: 100, ObstacleTrack: 10); not read if
            ``gt`` is given.
        ignore_index: Void label; predictions on void pixels are dropped.
        taus: The sIoU / PPV thresholds at which TP, FN and FP are counted
            (default: ``linspace(0.25, 0.75, 11)``).
        gt: ``GroundTruthComponents(labels, min_gt_size, ignore_index)``,
            if already computed for another scorer of the image.
        strict: Predict OOD where ``scores > threshold``, as the SMIYC
            benchmark's code (``default_instancer``) does.

    Returns:
        dict with ``siou`` (per ground-truth component), ``ppv`` (per
        predicted component), and ``tp``, ``fn``, ``fp`` arrays over ``taus``.
        Components are in the labelling's order, not sorted.
    """
    s = to_numpy(scores)
    if gt is None:
        lab = to_numpy(labels)
        if s.shape != lab.shape or s.ndim != 2:
            raise InvalidValueError(
                f'scores {s.shape} and labels {lab.shape} must '
                'be the same (H, W) shape')
        gt = GroundTruthComponents(lab, min_gt_size, ignore_index)
    elif s.shape != gt.shape:
        raise InvalidValueError(
            f'scores {s.shape} and labels {gt.shape} must be '
            'the same (H, W) shape')
    elif gt.min_gt_size != min_gt_size:
        raise InvalidValueError(f'`gt` was computed with min_gt_size='
                                f'{gt.min_gt_size}, not {min_gt_size}')
    pred = s > threshold if strict else s >= threshold
    pred &= gt.valid  # predictions on void pixels are dropped
    pred_cc, n_pred = label_components(pred)
    npd = n_pred + 1
    # inter[i, j]: pixels of ground-truth component i and predicted
    # component j (0 = none), before the size filters. Row 0 is the
    # predicted sizes minus the rows of the OOD pixels (only those are
    # visited); inter[0, 0] also holds the void pixels and is never read.
    pred_cc = pred_cc.reshape(-1)
    sizes = np.bincount(pred_cc, minlength=npd)
    inter = np.bincount(gt.component * npd + pred_cc[gt.index],
                        minlength=(gt.num + 1) * npd).reshape(gt.num + 1, npd)
    inter[0] = sizes - inter.sum(axis=0)
    # small predicted components are removed (their pixels count as not
    # predicted); small ground-truth components become void (their pixels
    # leave the region of interest)
    small = sizes < min_pred_size
    small[0] = False
    if small.any():
        inter[:, 0] += inter[:, small].sum(axis=1)
        inter = inter[:, ~small]
    inter = inter[~gt.small].astype(np.float64)
    # keep the components that survived the filters and the ROI
    keep_g = np.r_[True, inter[1:].sum(axis=1) > 0]
    keep_p = np.r_[True, inter[:, 1:].sum(axis=0) > 0]
    inter = inter[keep_g][:, keep_p]
    gt_size = inter.sum(axis=1)[1:]
    pred_size = inter.sum(axis=0)[1:]
    hits = inter[1:, 1:]                       # (gt comps, pred comps)
    touching = hits > 0
    union_pred = touching @ pred_size          # |K^(k)|
    inter_k = hits.sum(axis=1)                 # |k ∩ K^(k)|
    gt_in_pred = hits.sum(axis=0)              # per pred comp: any-GT pixels
    adjust = touching @ gt_in_pred - inter_k   # |K^(k) ∩ A(k)|
    denom = union_pred + gt_size - inter_k - adjust
    siou = np.divide(inter_k, denom, out=np.zeros_like(inter_k),
                     where=denom > 0)
    ppv = np.divide(gt_in_pred, pred_size, out=np.zeros_like(pred_size),
                    where=pred_size > 0)
    taus = np.asarray(taus, np.float64)
    tp = (siou[None, :] >= taus[:, None]).sum(axis=1)
    fn = siou.size - tp
    fp = (ppv[None, :] < taus[:, None]).sum(axis=1)
    return dict(siou=siou, ppv=ppv, tp=tp, fn=fn, fp=fp)


class ComponentAccumulator(Accumulator):
    """Streams :func:`image_component_stats` over images; mergeable.

    Memory: two floats per component plus three counts per tau.

    Args:
        threshold: Predict OOD where ``score >= threshold`` (``>`` if
            ``strict``).
        min_pred_size / min_gt_size: Size filters in pixels, predicted /
            ground truth (step 2 of the module docstring).
        preset: ``'anomaly_track'`` (500 / 100) or ``'obstacle_track'``
            (50 / 10); overrides the sizes. ``None`` keeps them.
        taus: sIoU / PPV thresholds for F1.
        ignore_index: Void label.
        strict: Predict OOD where ``score > threshold``, as the SMIYC
            benchmark's code does (with its threshold, from
            :class:`SMIYCBinnedCurve`, and ``taus=SMIYC_TAUS``: its
            numbers).
    """

    def __init__(self, threshold: float, min_pred_size: int = 500,
                 min_gt_size: int = 100, preset: Optional[str] = None,
                 taus: Sequence[float] = DEFAULT_TAUS,
                 ignore_index: int = IGNORE_INDEX, strict: bool = False):
        if preset is not None:
            if preset not in SIZE_PRESETS:
                raise InvalidValueError(
                    f'`preset` must be one of '
                    f'{sorted(SIZE_PRESETS)}, got {preset!r}')
            min_pred_size, min_gt_size = SIZE_PRESETS[preset]
        for n, v in (('min_pred_size', min_pred_size),
                     ('min_gt_size', min_gt_size)):
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise InvalidValueError(
                    f'`{n}` must be an int >= 0, got {v!r}')
        if not np.isfinite(threshold):
            raise InvalidValueError(
                f'`threshold` must be finite, got {threshold}')
        if not isinstance(strict, (bool, np.bool_)):
            raise InvalidValueError(f'`strict` must be a bool, got {strict!r}')
        self.threshold = float(threshold)
        self.strict = bool(strict)
        self.min_pred_size, self.min_gt_size = int(min_pred_size), int(
            min_gt_size)
        self.taus = tuple(float(t) for t in taus)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        # exact sums (rationals of the float64 ratios): the mean is then
        # the correctly rounded mean, whatever the order of the images and
        # however they were split across accumulators
        self.siou_sum = self.ppv_sum = Fraction(0)
        self.num_gt = self.num_pred = 0
        k = len(self.taus)
        self.tp, self.fn, self.fp = (np.zeros(k, np.int64) for _ in range(3))

    def update(self, scores, labels,
               gt: Optional[GroundTruthComponents] = None
               ) -> 'ComponentAccumulator':
        """Add one image.

        Args:
            scores: ``(H, W)`` OOD scores.
            labels: ``(H, W)`` 0 / 1 / ``ignore_index``; not read if ``gt``
                is given.
            gt: The labels' :class:`GroundTruthComponents` (same
                ``min_gt_size``), shared with other scorers of the image.
        """
        st = image_component_stats(scores, labels, self.threshold,
                                   self.min_pred_size, self.min_gt_size,
                                   self.ignore_index, self.taus, gt,
                                   self.strict)
        self.siou_sum += sum(map(Fraction, st['siou'].tolist()), Fraction(0))
        self.ppv_sum += sum(map(Fraction, st['ppv'].tolist()), Fraction(0))
        self.num_gt += st['siou'].size
        self.num_pred += st['ppv'].size
        self.tp += st['tp']
        self.fn += st['fn']
        self.fp += st['fp']
        return self

    def state_dict(self) -> dict:
        """Counts, and the exact sIoU / PPV sums as ``(numerator,
        denominator)`` Python ints."""
        return dict(siou_sum=self.siou_sum.as_integer_ratio(),
                    ppv_sum=self.ppv_sum.as_integer_ratio(),
                    num_gt=self.num_gt, num_pred=self.num_pred,
                    tp=self.tp.copy(), fn=self.fn.copy(), fp=self.fp.copy())

    def load_state_dict(self, state: dict) -> 'ComponentAccumulator':
        """Add a :meth:`state_dict` (e.g. another rank's) into this one."""
        self.siou_sum += Fraction(*state['siou_sum'])
        self.ppv_sum += Fraction(*state['ppv_sum'])
        self.num_gt += state['num_gt']
        self.num_pred += state['num_pred']
        self.tp += state['tp']
        self.fn += state['fn']
        self.fp += state['fp']
        return self

    def compute(self) -> Dict[str, float]:
        """``siou``, ``ppv``, ``mean_f1``, ``f1@<tau>`` and the counts."""
        nan = float('nan')
        out = dict(num_gt_components=self.num_gt,
                   num_pred_components=self.num_pred,
                   component_threshold=self.threshold)
        if self.num_gt == 0:
            warnings.warn('no ground-truth OOD components: sIoU undefined',
                          UndefinedMetricWarning)
        out['siou'] = float(self.siou_sum / self.num_gt) if self.num_gt \
            else nan
        out['ppv'] = float(self.ppv_sum / self.num_pred) if self.num_pred \
            else nan
        denom = 2 * self.tp + self.fn + self.fp
        f1 = np.where(denom > 0, 2 * self.tp / np.maximum(denom, 1), np.nan)
        for t, v in zip(self.taus, f1):
            out[f'f1@{t:g}'] = float(v)
        out['mean_f1'] = float(np.mean(f1)) if np.isfinite(f1).all() else nan
        return out


class SMIYCBinnedCurve(Accumulator):
    """The SMIYC benchmark's binned pixel curve, for its component
    threshold: each frame's pixels in the benchmark's per-frame quantile
    bins (:func:`~mmseg_ood.evaluation.functional.roc_pr.smiyc_frame_bins`),
    pooled at :meth:`compute` into its best-F1 threshold
    (:func:`~mmseg_ood.evaluation.functional.roc_pr.smiyc_best_f1`).

    With :class:`ComponentAccumulator` at that threshold, ``strict=True``
    and ``taus=SMIYC_TAUS`` the component metrics equal those of the
    benchmark's code on the same score maps (``OODMetric``'s
    ``component_threshold='smiyc'``). The exact threshold (the best-F1
    score of the exact pixel curve, ``>=``) is the package's default.

    Frames are pooled in the order they were added (a merge appends the
    other accumulator's frames): the benchmark's sort orders equal edges of
    different frames by position, which decides the threshold only where
    the highest edges of several frames tie. Frames without non-void
    pixels are skipped (the benchmark's code fails on them).

    Memory: at most ``num_bins + 1`` bins of three numbers (24 bytes) per
    frame: about 18 KiB a frame, 22 MiB for 1203 frames (Fishyscapes
    LostAndFound's size).

    Args:
        num_bins: Bins per frame, the benchmark's ``PixBinaryClass``
            ``num_bins`` (768).
        ignore_index: Void label.
        name: Scorer name for messages.
    """

    def __init__(self, num_bins: int = SMIYC_FRAME_BINS,
                 ignore_index: int = IGNORE_INDEX, name: str = 'scores'):
        if not isinstance(num_bins, (int, np.integer)) or num_bins < 2:
            raise InvalidValueError(
                f'`num_bins` must be an int >= 2, got {num_bins!r}')
        self.num_bins = int(num_bins)
        self.ignore_index = ignore_index
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.frames = []  # (lower edges, OOD counts, ID counts) per frame

    def update(self, scores, labels) -> 'SMIYCBinnedCurve':
        """Add one frame.

        Args:
            scores: ``(H, W)`` (or any shape) OOD scores.
            labels: The same shape: 0 / 1 / ``ignore_index``.
        """
        s, y = flat_scores_and_labels(scores, labels, self.ignore_index,
                                      self.name)
        return self.update_valid(s, y)

    def update_valid(self, scores: np.ndarray,
                     labels: np.ndarray) -> 'SMIYCBinnedCurve':
        """Add one frame of validated pixels.

        Args:
            scores: 1-D scores, finite where ``labels`` is 0 or 1.
            labels: 1-D uint8: 0 ID, 1 OOD, 2 void (left out).
        """
        keep = labels != VOID
        if not keep.all():
            scores, labels = scores[keep], labels[keep]
        if scores.size:
            self.frames.append(smiyc_frame_bins(scores, labels == 1,
                                                self.num_bins))
        return self

    def state_dict(self) -> dict:
        """The frames' bins concatenated (``edges``, ``pos``, ``neg``) and
        each frame's number of bins (``sizes``), in order."""
        cat = [np.concatenate([f[i] for f in self.frames]) if self.frames
               else np.zeros(0, np.float64 if i == 0 else np.int64)
               for i in range(3)]
        return dict(num_bins=self.num_bins, edges=cat[0], pos=cat[1],
                    neg=cat[2],
                    sizes=np.array([f[0].size for f in self.frames],
                                   np.int64))

    def load_state_dict(self, state: dict) -> 'SMIYCBinnedCurve':
        """Append another accumulator's frames (:meth:`state_dict`) after
        this one's.

        Args:
            state: Another :class:`SMIYCBinnedCurve`'s :meth:`state_dict`.

        Raises:
            ValueError: the state was binned with another ``num_bins``.
        """
        if state['num_bins'] != self.num_bins:
            raise InvalidValueError(
                f"state has num_bins={state['num_bins']!r}, this curve "
                f'{self.num_bins!r}')
        if len(state['sizes']) == 0:
            return self
        cuts = np.cumsum(state['sizes'])[:-1]
        self.frames.extend(zip(np.split(state['edges'], cuts),
                               np.split(state['pos'], cuts),
                               np.split(state['neg'], cuts)))
        return self

    def compute(self) -> Dict[str, float]:
        """``smiyc_threshold`` (predict OOD where ``score >`` it) and
        ``smiyc_best_f1`` (the F1 of the binned curve there; both NaN
        without OOD or ID pixels) and ``frames``."""
        t, f1 = smiyc_best_f1(self.frames)
        return dict(smiyc_threshold=t, smiyc_best_f1=f1,
                    frames=len(self.frames))
