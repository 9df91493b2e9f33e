"""Normalized softmax entropy."""
import math

import torch
from torch import Tensor

from .base import OOD_SCORERS, BaseScorer, ScoreInputs, check_num_classes


@OOD_SCORERS.register_module('entropy')
class Entropy(BaseScorer):
    """Softmax entropy normalized by ``log C``, in ``[0, 1]``.

    ``S(x) = -(1 / log C) * sum_c p_c log p_c`` with ``p = softmax(s)``
    (thesis eq. 3.2; normalization as in entropy-maximization sec. 3.2).
    Computed from ``log_softmax`` so that ``p_c = 0`` contributes 0, not NaN.
    Higher = more OOD.

    Shape:
        ``(N, C, H, W) -> (N, H, W)``; ``(N, C) -> (N,)``.

    References:
        Chan, Rottmann & Gottschalk, "Entropy Maximization and Meta
        Classification for Out-of-Distribution Detection in Semantic
        Segmentation", ICCV 2021, sec. 3.2; norm-decoupling thesis, eq. 3.2.
    """
    name = 'entropy'

    def score(self, inputs: ScoreInputs) -> Tensor:
        logits = inputs.logits
        num_classes = check_num_classes('entropy', logits)
        log_p = torch.log_softmax(logits.float(), dim=1)
        ent = -(log_p.exp() * log_p).sum(dim=1)
        return ent / math.log(num_classes)
