"""High-level entry points used by ``tools/``."""
from .test import test
from .train import train

__all__ = ['train', 'test']
