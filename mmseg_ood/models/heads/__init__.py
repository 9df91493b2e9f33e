"""Decode heads registered into ``mmseg.registry.MODELS``."""
from .implicit_background_head import (IBEHead, ImplicitBackgroundHead,
                                       SCrIBEHead)
from .outlier_mask2former_head import OutlierMask2FormerHead

__all__ = [
    'ImplicitBackgroundHead', 'IBEHead', 'SCrIBEHead', 'OutlierMask2FormerHead'
]
