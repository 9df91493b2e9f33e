"""Decode heads registered into ``mmseg.registry.MODELS``."""
from .implicit_background_head import (IBEHead, ImplicitBackgroundHead,
                                       SCrIBEHead)

__all__ = ['ImplicitBackgroundHead', 'IBEHead', 'SCrIBEHead']
