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
"""
from __future__ import annotations

import warnings
from typing import Dict, Sequence

import numpy as np

from ...errors import OODNotice


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
