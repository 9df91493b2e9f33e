"""Pure functions on arrays: exact pixel metrics, ROC / PR curves (and
the SMIYC benchmark's binned one), order keys of float scores, proposal
re-ranking. No state, no
registry."""
from .float_keys import keys_to_values, order_keys
from .inputs import flat_ood_labels, flat_scores_and_labels, to_numpy
from .pixel_metrics import pixel_ood_metrics
from .roc_pr import (UndefinedMetricWarning, curve_metrics, smiyc_best_f1,
                     smiyc_frame_bins)

__all__ = [
    'keys_to_values', 'order_keys', 'flat_ood_labels',
    'flat_scores_and_labels', 'to_numpy', 'pixel_ood_metrics',
    'UndefinedMetricWarning', 'curve_metrics', 'smiyc_frame_bins',
    'smiyc_best_f1'
]
