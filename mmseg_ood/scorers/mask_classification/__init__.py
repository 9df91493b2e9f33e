"""Scorers of mask-classification heads (MaskFormer / Mask2Former): they
read the per-query class and mask predictions, not only per-pixel class
scores."""
from .eam import EnsembleOfMasks
from .mask2anomaly import Mask2Anomaly
from .maskomaly import Maskomaly, QuerySelection
from .no_object import NoObjectMass
from .rba import RejectedByAll
from .uno import UncertaintyNegativeObjectness

__all__ = [
    'EnsembleOfMasks', 'Mask2Anomaly', 'Maskomaly', 'QuerySelection',
    'NoObjectMass', 'RejectedByAll', 'UncertaintyNegativeObjectness'
]
