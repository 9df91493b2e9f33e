"""OOD scorers: one class per score, registered in :data:`OOD_SCORERS`.

Every scorer maps :class:`ScoreInputs` to one float32 value per pixel,
higher = more OOD.
"""
from .background import BackgroundProbability
from .base import (OOD_SCORERS, BaseScorer, ScoreInputs,
                   UnsupportedScorerError, build_scorer, parse_scorer_spec)
from .energy import Energy
from .entropy import Entropy
from .feature_space import (ASH, DICE, KNN, FeatureSpaceScorer,
                            FeatureStatistics, Mahalanobis, ReAct,
                            RelativeMahalanobis, StatisticsSpec, ViM)
from .gen import GeneralizedEntropy
from .mask_classification import (EnsembleOfMasks, Mask2Anomaly, Maskomaly,
                                  NoObjectMass, RejectedByAll,
                                  UncertaintyNegativeObjectness)
from .max_logit import MaxLogit
from .msp import MaxSoftmax
from .n_energy import NormalizedEnergy
from .n_max_logit import NormalizedMaxLogit
from .norm import EmbeddingNorm
from .odin import ODIN
from .sml import StandardizedMaxLogit

__all__ = [
    'OOD_SCORERS', 'BaseScorer', 'ScoreInputs', 'UnsupportedScorerError',
    'build_scorer', 'parse_scorer_spec', 'MaxSoftmax', 'Entropy', 'MaxLogit',
    'StandardizedMaxLogit', 'Energy', 'EmbeddingNorm', 'NormalizedMaxLogit',
    'NormalizedEnergy', 'BackgroundProbability', 'RejectedByAll',
    'NoObjectMass', 'GeneralizedEntropy', 'UncertaintyNegativeObjectness',
    'EnsembleOfMasks', 'Mask2Anomaly', 'Maskomaly', 'FeatureSpaceScorer',
    'FeatureStatistics', 'StatisticsSpec', 'ReAct', 'ASH', 'DICE', 'ViM',
    'Mahalanobis', 'RelativeMahalanobis', 'KNN', 'ODIN'
]
