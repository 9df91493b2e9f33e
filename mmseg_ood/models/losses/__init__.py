"""Losses registered into ``mmseg.registry.MODELS``."""
from .entropy_maximization_loss import EntropyMaximizationLoss
from .monitored_loss import MonitoredLoss
from .uoi_loss import IoULoss, UOILoss, expected_intersection_union

__all__ = [
    'EntropyMaximizationLoss', 'IoULoss', 'MonitoredLoss', 'UOILoss',
    'expected_intersection_union'
]
