"""Ranking metrics from per-value positive / negative counts.

Shared by the exact one-shot :func:`~mmseg_ood.evaluation.pixel_ood_metrics`
(counts per distinct score) and the streaming
:class:`~mmseg_ood.evaluation.PixelOODAccumulator` (counts per score bin), so
the two differ only in how scores are grouped.

Definitions (OOD = positive class; a pixel is predicted OOD when its score
is >= the threshold; thresholds run over the distinct values, descending):

- **AUROC**: area under (FPR, TPR), trapezoidal, starting at (0, 0); ties
  count one half (Mann-Whitney). Equals sklearn's ``roc_auc_score``.
- **AP**: step-wise average precision ``sum_n (R_n - R_{n-1}) P_n``, the
  SMIYC / sklearn ``average_precision_score`` definition.
- **FPR@95**: the FPR at the first threshold (descending) where
  TPR >= 0.95, no interpolation.
- **best F1**: the maximum of ``2 TP / (2 TP + FP + FN)`` and its threshold.

:func:`smiyc_frame_bins` and :func:`smiyc_best_f1` group scores as the
SMIYC benchmark's own code does for its component threshold (per-frame
quantile bins, pooled): see :doc:`/evaluation/smiyc_parity`.
"""
from __future__ import annotations

import warnings
from typing import Dict, Sequence, Tuple

import numpy as np

from ...errors import InvalidValueError, OODNotice


class UndefinedMetricWarning(OODNotice):
    """A metric is undefined for the data (no OOD or no ID pixels); it is
    reported as NaN. A package notice
    (:class:`~mmseg_ood.errors.OODNotice`): a log line in a tool run."""


def curve_metrics(pos: np.ndarray, neg: np.ndarray, values: np.ndarray,
                  tpr_points: Sequence[float] = (0.95, ),
                  name: str = '') -> Dict[str, float]:
    """AUROC, AP, FPR@TPR, best F1 from counts at sorted distinct values.

    Args:
        pos: ``(V,)`` OOD counts per value, ``values`` ascending.
        neg: ``(V,)`` ID counts per value.
        values: ``(V,)`` ascending score values (bin lower edges for binned
            counts); used for the reported thresholds.
        tpr_points: TPR levels at which to report FPR (``fpr@tprXX``) and
            the threshold.
        name: Scorer name for warnings.

    Returns:
        dict with ``auroc``, ``ap``, ``fpr95``, ``best_f1``,
        ``best_f1_threshold``, ``fpr@tpr<p>`` and ``threshold@tpr<p>`` for
        each point (0.95 always included), ``num_ood``, ``num_id``.
        Undefined values are NaN, with an :class:`UndefinedMetricWarning`.
    """
    keep = (pos + neg) > 0
    pos = pos[keep][::-1].astype(np.float64)
    neg = neg[keep][::-1].astype(np.float64)
    thr = values[keep][::-1]
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    n_pos = tp[-1] if tp.size else 0.0
    n_neg = fp[-1] if fp.size else 0.0
    out = dict(num_ood=int(n_pos), num_id=int(n_neg))
    nan_keys = ['auroc', 'ap', 'fpr95', 'best_f1', 'best_f1_threshold']
    for p in sorted(set(tpr_points) | {0.95}):
        nan_keys += [f'fpr@tpr{p:g}', f'threshold@tpr{p:g}']
    if n_pos == 0 or n_neg == 0:
        missing = 'OOD' if n_pos == 0 else 'ID'
        warnings.warn(
            f'{name or "scores"}: no {missing} pixels (after removing void); '
            'AUROC, AP, FPR@95 and F1 are undefined and reported as NaN',
            UndefinedMetricWarning)
        out.update({k: float('nan') for k in nan_keys})
        return out
    tpr, fpr = tp / n_pos, fp / n_neg
    tpr0, fpr0 = np.r_[0.0, tpr], np.r_[0.0, fpr]
    out['auroc'] = float(np.sum(np.diff(fpr0) * (tpr0[1:] + tpr0[:-1]) / 2))
    precision = tp / (tp + fp)
    out['ap'] = float(np.sum(np.diff(tpr0) * precision))
    f1 = 2 * tp / (tp + fp + n_pos)
    best = int(np.argmax(f1))
    out['best_f1'] = float(f1[best])
    out['best_f1_threshold'] = float(thr[best])
    for p in sorted(set(tpr_points) | {0.95}):
        # tpr ends at 1, so the first index with tpr >= p exists
        i = int(np.searchsorted(tpr, p, side='left'))
        out[f'fpr@tpr{p:g}'] = float(fpr[i])
        out[f'threshold@tpr{p:g}'] = float(thr[i])
    out['fpr95'] = out['fpr@tpr0.95']
    return out


#: Bins per frame of the SMIYC benchmark's pixel curve (its config
#: ``PixBinaryClass``, ``num_bins=768``), from which it reads the
#: component threshold.
SMIYC_FRAME_BINS = 768


def smiyc_frame_bins(scores: np.ndarray, ood: np.ndarray,
                     num_bins: int = SMIYC_FRAME_BINS
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's pixels in the bins of the SMIYC benchmark's pixel curve.

    As ``binary_confusion_matrix(..., bin_strategy='percentiles')`` of
    ``road_anomaly_benchmark/metrics/pixel_classification.py`` (commit
    ``1c7804e``) bins them, computed anew from that reading: the edges
    are the frame's extreme scores widened by
    ``eps = max(0.01 (max - min), 0.01)``, ``min(num_bins // 2, n_c)``
    quantiles (``np.quantile``, linear) of the scores of each class ``c``
    present (``n_c`` its pixels), sorted, duplicates dropped. Bin ``j`` is
    ``[e_j, e_{j+1})``, the last one closed, as ``np.histogram`` counts.
    The quantiles and counts are taken from each class's sorted scores,
    which gives ``np.quantile`` / ``np.histogram``'s values exactly, about
    six times faster than on the unsorted scores.

    Args:
        scores: ``(N,)`` scores of the frame's non-void pixels, in the
            dtype the benchmark would see (its arithmetic on the range runs
            in that dtype).
        ood: ``(N,)`` bool, True for OOD pixels.
        num_bins: The benchmark's ``num_bins``.

    Returns:
        tuple: ``(edges, pos, neg)``: the bins' lower edges ascending
        (float64 for float32 scores, as the benchmark's), and their OOD and
        ID pixel counts (int64).

    Raises:
        ValueError: no pixels (the benchmark's code fails there too), or
            ``scores`` and ``ood`` of different lengths.
    """
    s = np.asarray(scores).reshape(-1)
    ood = np.asarray(ood, bool).reshape(-1)
    if s.size == 0 or s.size != ood.size:
        raise InvalidValueError(
            f'smiyc_frame_bins needs one or more scores, one OOD flag '
            f'each; got {s.size} and {ood.size}')
    lo, hi = s.min(), s.max()
    eps = np.maximum((hi - lo) * 1e-2, 1e-2)
    classes = [np.sort(s[ood]), np.sort(s[~ood])]
    parts = [np.array([lo - eps, hi + eps])]
    for c in classes:
        if c.size:
            parts.append(np.quantile(
                c, np.linspace(0, 1, min(num_bins // 2, c.size))))
    edges = np.unique(np.concatenate(parts))
    pos, neg = (np.diff(np.r_[c.searchsorted(edges[:-1], 'left'),
                              c.searchsorted(edges[-1:], 'right')])
                for c in classes)
    return edges[:-1], pos.astype(np.int64), neg.astype(np.int64)


def smiyc_best_f1(frames: Sequence[Tuple[np.ndarray, np.ndarray,
                                         np.ndarray]]
                  ) -> Tuple[float, float]:
    """The best pixel-F1 threshold of pooled frames, as the SMIYC benchmark
    picks its component threshold.

    Read from ``aggregate_dynamic_bins`` (``pixel_classification.py``),
    ``curves_from_cmats`` (``pixel_classification_curves.py``) and
    ``get_thresh_p_from_curve`` (``instance_segmentation.py``) at commit
    ``1c7804e``, computed anew: every frame's bins, each frame's from its
    highest edge down, are concatenated in frame order and ordered by
    ``np.argsort(edges)[::-1]``; cumulative sums give TP and FP at each
    edge. Of a run of equal edges only the last point is kept, and the
    very first point whatever follows (the benchmark's code keeps index
    0). The point ``(TP, FP) = (0, 0)`` at ``max edge + 1`` goes in front;
    ``F1 = 2 TP / (2 TP + FP + FN)``, FN = the OOD pixels less TP, and the
    threshold is the edge of the first maximum (``np.nanargmax``). The
    benchmark then predicts OOD where ``score > threshold``, whereas its
    curve counted a bin's pixels at the bin's lower edge.

    Args:
        frames: Per frame, :func:`smiyc_frame_bins`'s ``(edges, pos,
            neg)``, in the order the frames were evaluated (ties between
            frames' edges are ordered by the sort, as in the benchmark).

    Returns:
        tuple: ``(threshold, best F1)``; ``(nan, nan)`` without OOD or
        without ID pixels (where the benchmark's code divides by zero).
    """
    if not frames:
        return float('nan'), float('nan')
    edges = np.concatenate([e[::-1] for e, _, _ in frames])
    pos = np.concatenate([p[::-1] for _, p, _ in frames])
    neg = np.concatenate([n[::-1] for _, _, n in frames])
    num_pos, num_neg = int(pos.sum()), int(neg.sum())
    if num_pos == 0 or num_neg == 0:
        return float('nan'), float('nan')
    order = np.argsort(edges)[::-1]
    edges = edges[order]
    tp = np.cumsum(pos[order].astype(np.float64))
    fp = np.cumsum(neg[order].astype(np.float64))
    last = np.r_[0, np.flatnonzero(edges[:-1] != edges[1:]),
                 edges.size - 1]
    tp, fp, edges = tp[last], fp[last], edges[last]
    if tp[0] != 0 or fp[0] != 0:
        tp, fp = np.r_[0.0, tp], np.r_[0.0, fp]
        edges = np.r_[float(np.max(edges)) + 1, edges]
    with np.errstate(invalid='ignore', divide='ignore'):
        f1 = 2 * tp / (2 * tp + fp + (num_pos - tp))
    best = int(np.nanargmax(f1))
    return float(edges[best]), float(f1[best])
