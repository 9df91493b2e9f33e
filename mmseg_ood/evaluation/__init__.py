"""OOD evaluation: exact and streaming pixel metrics, SMIYC component
metrics, calibration, open-set mIoU, OOD segments and their meta
classifier, and the registered mmseg metrics.

Every streaming accumulator follows one merge protocol
(:mod:`~mmseg_ood.evaluation.accumulator`), and every registered metric is
an :class:`AccumulatingMetric` that merges its accumulators across ranks
with :func:`merge_across_ranks`."""
from .accumulating_metric import AccumulatingMetric
from .accumulator import Accumulator, merge_across_ranks
from .background_iou import (BackgroundIoUAccumulator, BackgroundIoUMetric,
                             background_pixel_counts)
from .calibration import CalibrationAccumulator, CalibrationMetric
from .components import (DEFAULT_TAUS, SIZE_PRESETS, ComponentAccumulator,
                         image_component_stats)
from .curves import UndefinedMetricWarning, curve_metrics
from .label_checks import (UnlistedLabelValues, UnlistedLabelValueWarning,
                           unlisted_values_message, warn_unlisted_values)
from .meta_classifier import (MetaClassifier, cross_validated_tp_probability,
                              load_meta_classifiers, save_meta_classifiers)
from .ood_metric import OODMetric, format_table
from .ood_segments import feature_names, image_segments
from .operating_point import OperatingPointMetric, rate_interval
from .open_set_iou import OpenSetIoUAccumulator, OpenSetIoUMetric
from .per_class_iou import PerClassIoUMetric
from .pixel_metrics import pixel_ood_metrics
from .representation import (RepresentationAccumulator,
                             RepresentationMetric, effective_dimensionality)
from .segment_metric import (DEFAULT_SEGMENT_THRESHOLDS, OODSegmentMetric,
                             SegmentData, detection_errors)
from .streaming import StreamingOODMetric

__all__ = [
    'Accumulator', 'merge_across_ranks', 'AccumulatingMetric',
    'BackgroundIoUAccumulator', 'BackgroundIoUMetric',
    'background_pixel_counts',
    'pixel_ood_metrics', 'StreamingOODMetric', 'ComponentAccumulator',
    'image_component_stats', 'CalibrationAccumulator', 'CalibrationMetric',
    'OODMetric', 'OperatingPointMetric', 'rate_interval',
    'PerClassIoUMetric',
    'OpenSetIoUAccumulator', 'OpenSetIoUMetric',
    'UndefinedMetricWarning', 'curve_metrics', 'format_table', 'DEFAULT_TAUS',
    'SIZE_PRESETS', 'MetaClassifier', 'cross_validated_tp_probability',
    'load_meta_classifiers', 'save_meta_classifiers', 'feature_names',
    'image_segments', 'DEFAULT_SEGMENT_THRESHOLDS', 'OODSegmentMetric',
    'SegmentData', 'detection_errors', 'RepresentationAccumulator',
    'RepresentationMetric', 'effective_dimensionality',
    'UnlistedLabelValues', 'UnlistedLabelValueWarning',
    'unlisted_values_message', 'warn_unlisted_values'
]
