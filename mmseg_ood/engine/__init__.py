"""The Runner side of the project: hooks registered into
``mmseg.registry.HOOKS`` (:mod:`~mmseg_ood.engine.hooks`), the evaluation
session every OOD tool runs its passes in, and the tuning grids."""
from ..formats.smiyc import smiyc_frame_id
from .evaluation_session import EvaluationSession, PassResult
from .hooks import (FiniteLogitsHook, MetaClassifierHook, OODScoringHook,
                    OODTrackingHook, OODVisualizationHook,
                    PredictionCaptureHook, ProgressBarHook,
                    RankZeroLoggerHook, SMIYCExportHook,
                    filter_score_map, normalize_min_max)

__all__ = [
    'FiniteLogitsHook', 'MetaClassifierHook', 'filter_score_map',
    'OODScoringHook', 'OODTrackingHook', 'OODVisualizationHook',
    'PredictionCaptureHook', 'ProgressBarHook', 'RankZeroLoggerHook',
    'SMIYCExportHook', 'normalize_min_max', 'smiyc_frame_id',
    'EvaluationSession', 'PassResult'
]
