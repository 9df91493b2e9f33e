"""OOD evaluation: exact and streaming pixel metrics, SMIYC component
metrics, calibration, and the registered mmseg ``OODMetric``."""
from .calibration import CalibrationAccumulator, CalibrationMetric
from .components import (DEFAULT_TAUS, SIZE_PRESETS, ComponentAccumulator,
                         image_component_stats)
from .curves import UndefinedMetricWarning, curve_metrics
from .ood_metric import OODMetric, format_table
from .open_set_iou import OpenSetIoUMetric
from .pixel_metrics import pixel_ood_metrics
from .streaming import StreamingOODMetric

__all__ = [
    'pixel_ood_metrics', 'StreamingOODMetric', 'ComponentAccumulator',
    'image_component_stats', 'CalibrationAccumulator', 'CalibrationMetric',
    'OODMetric', 'OpenSetIoUMetric',
    'UndefinedMetricWarning', 'curve_metrics', 'format_table', 'DEFAULT_TAUS',
    'SIZE_PRESETS'
]
