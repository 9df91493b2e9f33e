"""ASH: activation shaping of each pixel's embedding, then the energy."""
from __future__ import annotations

import torch
from torch import Tensor

from ...errors import InvalidValueError
from ..base import OOD_SCORERS, BaseScorer, ScoreInputs, check_number
from .base import classifier_logits, free_energy

VARIANTS = ('p', 'b', 's')


@OOD_SCORERS.register_module('ash')
class ASH(BaseScorer):
    """ASH: prune each embedding to its top ``(100 - p)`` % activations,
    reshape the rest, then score the energy of the recomputed logits.

    Djurisic, Bozanic, Ashok & Liu (2023), sec. 3 (Algorithm 1): with ``k =
    D - round(D p / 100)`` and ``T_k(z)`` the embedding with all but its
    ``k`` largest values set to zero,

    - ASH-P: ``z' = T_k(z)``;
    - ASH-B: ``z' = (s_1 / k) 1[T_k(z) kept]`` (the kept positions
      binarized to the mean, ``s_1 = sum_j z_j``);
    - ASH-S: ``z' = T_k(z) exp(s_1 / s_2)``, ``s_2 = sum_j T_k(z)_j``;

    and ``S(x) = -log sum_c exp(W_c z' + b_c)`` (energy, T = 1).
    Higher = more OOD. No fit.

    Per pixel: the paper shapes the pooled penultimate activations of one
    image; here each pixel's embedding (the input of the final 1x1
    classifier) is shaped on its own. For an embedding whose kept values
    sum to 0 (all zeros after a ReLU) ASH-S keeps ``z' = T_k(z)`` (scale 1)
    instead of dividing by zero; kept values summing to less than 0 (a head
    whose embeddings are not rectified) are an error for ASH-S, whose
    ``exp(s_1 / s_2)`` assumes rectified activations.

    Args:
        variant: ``'p'``, ``'b'`` or ``'s'``.
        percentile: ``p`` in ``[0, 100)``: the share of activations
            pruned (the paper's ImageNet settings: ASH-S 90, ASH-B 65,
            ASH-P 60).

    Shape:
        embeddings ``(N, D, H, W)`` (logits ``(N, C, H, W)``) ->
        ``(N, H, W)``; ``(N, D)`` -> ``(N,)``.

    References:
        Djurisic, Bozanic, Ashok & Liu, "Extremely Simple Activation
        Shaping for Out-of-Distribution Detection", ICLR 2023, sec. 3.
    """
    name = 'ash'
    requires_embeddings = True

    def __init__(self, variant: str = 's', percentile: float = 90.0):
        if variant not in VARIANTS:
            raise InvalidValueError(
                f'`variant` must be one of {VARIANTS}, got {variant!r}')
        self.variant = variant
        self.percentile = check_number('percentile', percentile, 0.0)
        if self.percentile >= 100:
            raise InvalidValueError(
                f'`percentile` must be in [0, 100), got {percentile}')

    def shape(self, z: Tensor) -> Tensor:
        """The shaped embeddings ``z'``, ``(N, D, ...)``."""
        d = z.shape[1]
        k = max(d - int(round(d * self.percentile / 100.0)), 1)
        values, index = z.topk(k, dim=1)
        if self.variant == 'b':
            fill = z.sum(1, keepdim=True) / k
            values = fill.expand_as(values)
        pruned = torch.zeros_like(z).scatter_(1, index, values)
        if self.variant == 's':
            s1 = z.sum(1, keepdim=True)
            s2 = values.sum(1, keepdim=True)
            if bool((s2 < 0).any()):
                raise InvalidValueError(
                    "scorer 'ash' (variant 's') scales by exp(s1 / s2), "
                    'which needs non-negative embeddings (after a ReLU); '
                    f'a pixel has kept activations summing to '
                    f'{float(s2.min()):.4g}: use variant=\'p\' or \'b\'')
            scale = torch.where(s2 != 0, s1 / torch.where(s2 != 0, s2, 1.0),
                                torch.zeros_like(s1))
            pruned = pruned * torch.exp(scale)
        return pruned

    def score(self, inputs: ScoreInputs) -> Tensor:
        z = self.shape(inputs.embeddings.float())
        return free_energy(classifier_logits(z, inputs.cls_weight,
                                             inputs.cls_bias))

    def __repr__(self) -> str:
        return f'ASH(variant={self.variant!r}, percentile={self.percentile})'
