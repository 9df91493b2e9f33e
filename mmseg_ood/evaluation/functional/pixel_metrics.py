"""Exact one-shot pixel-level OOD metrics."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from ...labels import IGNORE_INDEX
from .inputs import valid_scores_and_labels
from .roc_pr import curve_metrics


def pixel_ood_metrics(scores, labels, ignore_index: int = IGNORE_INDEX,
                      tpr_points: Sequence[float] = (0.95, ),
                      name: str = 'scores') -> Dict[str, float]:
    """Exact pixel-level AUROC, AP and FPR@95 (SMIYC definitions).

    Void pixels (``ignore_index``) are excluded; OOD (label 1) is the
    positive class; higher score = more OOD. AP is step-wise (sklearn
    ``average_precision_score``); FPR@95 is the FPR at the first threshold
    where TPR >= 0.95. Exact: counts are taken per distinct score value, so
    the results equal scikit-learn's to rounding. Memory: a sort of all
    valid pixels (use :class:`PixelOODAccumulator` for datasets).

    Args:
        scores: Float array / tensor of any shape.
        labels: Same shape; 0 = ID, 1 = OOD, ``ignore_index`` = void.
        ignore_index: Void label.
        tpr_points: Extra TPR levels for ``fpr@tpr<p>``.
        name: Used in error and warning messages.

    Returns:
        dict: ``auroc``, ``ap``, ``fpr95``, ``best_f1``,
        ``best_f1_threshold``, ``fpr@tpr<p>``, ``threshold@tpr<p>``,
        ``num_ood``, ``num_id``. NaN (with a warning) when a class is absent.

    Raises:
        ValueError: shape mismatch, labels outside {0, 1, ignore_index},
            NaN or Inf scores (the message names ``name``).
    """
    s, y = valid_scores_and_labels(scores, labels, ignore_index, name)
    values, inverse = np.unique(s, return_inverse=True)
    pos = np.bincount(inverse, weights=y, minlength=values.size)
    neg = np.bincount(inverse, minlength=values.size) - pos
    return curve_metrics(pos, neg, values, tpr_points, name)
