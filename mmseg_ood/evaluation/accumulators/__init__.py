"""Streaming state in bounded memory: each accumulator has ``update``,
``merge`` and ``compute`` (the protocol of :class:`Accumulator`), so the
registered metrics can merge them across ranks."""
from .background_iou import BackgroundIoUAccumulator, background_pixel_counts
from .base import Accumulator, merge_across_ranks
from .bootstrap import ImageHistograms, image_bootstrap
from .components import (DEFAULT_TAUS, SIZE_PRESETS, SMIYC_TAUS,
                         ComponentAccumulator, SMIYCBinnedCurve,
                         image_component_stats)
from .ece import ECEAccumulator
from .label_checks import (UnlistedLabelValues, UnlistedLabelValueWarning,
                           unlisted_values_message, warn_unlisted_values)
from .open_set_iou import OpenSetIoUAccumulator
from .per_image import PerImageOODMetrics
from .pixel import PixelOODAccumulator
from .representation import RepresentationAccumulator, effective_dimensionality
from .score_distribution import ScoreDistribution

__all__ = [
    'Accumulator', 'merge_across_ranks', 'BackgroundIoUAccumulator',
    'background_pixel_counts', 'ImageHistograms', 'image_bootstrap',
    'DEFAULT_TAUS', 'SIZE_PRESETS', 'SMIYC_TAUS', 'ComponentAccumulator',
    'SMIYCBinnedCurve', 'image_component_stats', 'ECEAccumulator',
    'OpenSetIoUAccumulator',
    'PerImageOODMetrics', 'PixelOODAccumulator',
    'RepresentationAccumulator', 'effective_dimensionality',
    'ScoreDistribution', 'UnlistedLabelValues', 'UnlistedLabelValueWarning',
    'unlisted_values_message', 'warn_unlisted_values'
]
