"""OOD evaluation in three layers, each importing only the ones before it:

- :mod:`~mmseg_ood.evaluation.functional`: pure functions on arrays;
- :mod:`~mmseg_ood.evaluation.accumulators`: streaming state with
  ``update`` / ``merge`` / ``compute`` (:class:`Accumulator`);
- :mod:`~mmseg_ood.evaluation.metrics`: the registered mmseg metrics, thin
  :class:`AccumulatingMetric` subclasses that feed accumulators and merge
  them across ranks with :func:`merge_across_ranks`.
"""
from ..deprecation import package_getattr
from .accumulators import (DEFAULT_TAUS, SIZE_PRESETS, Accumulator,
                           BackgroundIoUAccumulator, ComponentAccumulator,
                           ECEAccumulator, OpenSetIoUAccumulator,
                           PixelOODAccumulator, RepresentationAccumulator,
                           SMIYCBinnedCurve, UnlistedLabelValues,
                           UnlistedLabelValueWarning,
                           background_pixel_counts, effective_dimensionality,
                           image_component_stats, merge_across_ranks,
                           unlisted_values_message, warn_unlisted_values)
from .functional import (UndefinedMetricWarning, curve_metrics,
                         pixel_ood_metrics)
from .metrics import (DEFAULT_SEGMENT_THRESHOLDS, AccumulatingMetric,
                      BackgroundIoUMetric, ECEMetric, OODMetric,
                      OODSegmentMetric, OpenSetIoUMetric, OperatingPointMetric,
                      PerClassIoUMetric, RepresentationMetric, SegmentData,
                      detection_errors, format_table, rate_interval)

__getattr__ = package_getattr(__name__)  # names that moved or were renamed

__all__ = [
    'Accumulator', 'merge_across_ranks', 'AccumulatingMetric',
    'BackgroundIoUAccumulator', 'BackgroundIoUMetric',
    'background_pixel_counts', 'pixel_ood_metrics', 'PixelOODAccumulator',
    'ComponentAccumulator', 'SMIYCBinnedCurve', 'image_component_stats',
    'ECEAccumulator', 'ECEMetric', 'OODMetric', 'OperatingPointMetric',
    'rate_interval',
    'PerClassIoUMetric', 'OpenSetIoUAccumulator', 'OpenSetIoUMetric',
    'UndefinedMetricWarning', 'curve_metrics', 'format_table', 'DEFAULT_TAUS',
    'SIZE_PRESETS', 'DEFAULT_SEGMENT_THRESHOLDS', 'OODSegmentMetric',
    'SegmentData', 'detection_errors', 'RepresentationAccumulator',
    'RepresentationMetric', 'effective_dimensionality',
    'UnlistedLabelValues', 'UnlistedLabelValueWarning',
    'unlisted_values_message', 'warn_unlisted_values'
]
