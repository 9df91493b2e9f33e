"""Scorers on the embeddings ``z`` fitted on ID data (ReAct, DICE, ViM,
Mahalanobis, relative Mahalanobis, kNN) or shaping them (ASH), and the
streamed statistics they are fitted with."""
from .ash import ASH
from .base import FeatureSpaceScorer
from .dice import DICE
from .knn import KNN
from .mahalanobis import Mahalanobis, RelativeMahalanobis
from .react import ReAct
from .statistics import FeatureStatistics, StatisticsSpec
from .vim import ViM

__all__ = ['FeatureSpaceScorer', 'FeatureStatistics', 'StatisticsSpec',
           'ReAct', 'ASH', 'DICE', 'ViM', 'Mahalanobis', 'RelativeMahalanobis',
           'KNN']
