"""Segmentors that wrap an mmseg segmentor: the thresholded
:class:`OODSegmentor` and the OOD-aware TTA model."""
from .ood_segmentor import OODSegmentor, with_unknown_class
from .ood_tta import OODSegTTAModel

__all__ = ['OODSegmentor', 'with_unknown_class', 'OODSegTTAModel']
