"""Losses registered into ``mmseg.registry.MODELS``."""
from .entropy_maximization_loss import EntropyMaximizationLoss
from .mask2anomaly_margin_loss import Mask2AnomalyMarginLoss
from .mask_outlier_loss import MaskOutlierLoss, mask_class_scores
from .monitored_loss import MonitoredLoss
from .rba_outlier_loss import RbAOutlierLoss, rba_score
from .uoi_loss import IoULoss, UOILoss, expected_intersection_union

__all__ = [
    'EntropyMaximizationLoss', 'IoULoss', 'Mask2AnomalyMarginLoss',
    'MaskOutlierLoss', 'MonitoredLoss', 'RbAOutlierLoss', 'UOILoss',
    'mask_class_scores', 'rba_score',
    'expected_intersection_union'
]
