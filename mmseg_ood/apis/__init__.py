"""High-level entry points used by ``tools/`` and users."""
from .ood_test import ood_test
from .score import score_image
from .test import test
from .train import train

__all__ = ['train', 'test', 'score_image', 'ood_test']
