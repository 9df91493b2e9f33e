"""Implicit-background probability (IBE / SCrIBE heads)."""
import torch
from torch import Tensor

from .base import OOD_SCORERS, BaseScorer, ScoreInputs, softmax_stable


@OOD_SCORERS.register_module('background')
class BackgroundProbability(BaseScorer):
    """Probability of the implicit background class.

    IBE head: ``S(x) = softmax(v)_BG = 1 / (1 + S^2)`` with
    ``S = sum_FG exp(v_m)``, since ``v_BG = -log S`` (IBE eq. 5, scribe
    eq. 2). SCrIBE head: ``S(x) = sigmoid(v_BG)`` (scribe sec. 3). The
    background absorbs what no foreground class explains, so a high
    background probability marks OOD. Higher = more OOD.

    Shape:
        ``(N, C, H, W) -> (N, H, W)``; ``(N, C) -> (N,)``.

    References:
        "Implicit Background Estimation for Semantic
        Segmentation" (IBE), eq. 4-5; "SCrIBE: Sigmoid + IBE", sec. 3,
        eq. 2.
    """
    name = 'background'
    requires_background = True

    def score(self, inputs: ScoreInputs) -> Tensor:
        bg = inputs.background_index
        if inputs.head_kind == 'scribe':
            return torch.sigmoid(inputs.logits[:, bg].float())
        return softmax_stable(inputs.logits)[:, bg]
