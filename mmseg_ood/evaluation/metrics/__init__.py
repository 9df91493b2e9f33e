"""The metrics registered into ``mmseg.registry.METRICS``: thin
:class:`AccumulatingMetric` subclasses that feed accumulators and merge
them across ranks."""
from .accumulating_metric import AccumulatingMetric
from .background_iou import BackgroundIoUMetric
from .ece import ECEMetric
from .ood_metric import OODMetric, format_table
from .open_set_iou import OpenSetIoUMetric
from .operating_point import OperatingPointMetric, rate_interval
from .per_class_iou import PerClassIoUMetric
from .representation import RepresentationMetric
from .segment_metric import (DEFAULT_SEGMENT_THRESHOLDS, OODSegmentMetric,
                             SegmentData, detection_errors)

__all__ = [
    'AccumulatingMetric', 'BackgroundIoUMetric', 'ECEMetric', 'OODMetric',
    'format_table', 'OpenSetIoUMetric', 'OperatingPointMetric',
    'rate_interval', 'PerClassIoUMetric', 'RepresentationMetric',
    'DEFAULT_SEGMENT_THRESHOLDS', 'OODSegmentMetric', 'SegmentData',
    'detection_errors'
]
