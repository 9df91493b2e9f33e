"""Runner hooks registered into ``mmseg.registry.HOOKS``."""
from .finite_logits_hook import FiniteLogitsHook
from .ood_scoring_hook import OODScoringHook
from .ood_visualization_hook import OODVisualizationHook, normalize_min_max
from .progress_hook import ProgressBarHook
from .smiyc_export_hook import SMIYCExportHook, smiyc_frame_id

__all__ = [
    'FiniteLogitsHook', 'OODScoringHook', 'OODVisualizationHook',
    'ProgressBarHook',
    'SMIYCExportHook', 'normalize_min_max', 'smiyc_frame_id'
]
