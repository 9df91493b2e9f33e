"""Runner hooks registered into ``mmseg.registry.HOOKS``."""
from .ood_scoring_hook import OODScoringHook

__all__ = ['OODScoringHook']
