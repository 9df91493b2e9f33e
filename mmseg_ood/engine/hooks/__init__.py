"""Runner hooks registered into ``mmseg.registry.HOOKS``."""
from .extreme_images_hook import ExtremeImagesHook
from .finite_logits_hook import FiniteLogitsHook
from .meta_classifier_hook import MetaClassifierHook, filter_score_map
from .ood_scoring_hook import OODScoringHook
from .ood_tracking_hook import OODTrackingHook
from .ood_visualization_hook import OODVisualizationHook, normalize_min_max
from .prediction_capture_hook import PredictionCaptureHook
from .progress_hook import ProgressBarHook
from .rank_zero_logger_hook import RankZeroLoggerHook
from .smiyc_export_hook import SMIYCExportHook

__all__ = [
    'ExtremeImagesHook', 'FiniteLogitsHook', 'MetaClassifierHook',
    'filter_score_map',
    'OODScoringHook', 'OODTrackingHook', 'OODVisualizationHook',
    'PredictionCaptureHook',
    'ProgressBarHook', 'RankZeroLoggerHook', 'SMIYCExportHook',
    'normalize_min_max'
]
