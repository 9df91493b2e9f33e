"""Losses registered into ``mmseg.registry.MODELS``."""
from .entropy_maximization_loss import EntropyMaximizationLoss
from .monitored_loss import MonitoredLoss
from .rba_outlier_loss import RbAOutlierLoss, rba_score
from .uoi_loss import IoULoss, UOILoss, expected_intersection_union

__all__ = [
    'EntropyMaximizationLoss', 'IoULoss', 'MonitoredLoss', 'RbAOutlierLoss',
    'UOILoss', 'rba_score',
    'expected_intersection_union'
]
