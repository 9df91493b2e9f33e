"""Generalized entropy (GEN)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..errors import InvalidTypeError, InvalidValueError
from .base import (OOD_SCORERS, BaseScorer, ScoreInputs, check_num_classes,
                   check_number)


@OOD_SCORERS.register_module('gen')
class GeneralizedEntropy(BaseScorer):
    """Generalized entropy of the softmax, over its ``M`` largest entries.

    ``S(x) = G_gamma(p) = sum_{j=1..M} p_(j)^gamma * (1 - p_(j))^gamma``
    with ``p = softmax(s)`` and ``p_(1) >= p_(2) >= ...`` the sorted class
    probabilities (Liu, Lochman & Zach 2023, sec. 3: the generalized entropy
    ``G_gamma`` and its truncation to the top-``M`` classes; the authors'
    ``benchmark.py``, ``generalized_gamma_entropy``, is the same formula). The
    paper's defaults are ``gamma = 0.1`` and ``M = 100`` (ImageNet-1k).

    Sign: ``G_gamma`` is an entropy, 0 for a one-hot ``p`` and largest for the
    uniform one, so it is returned as it is: higher = more OOD. (The paper
    and the authors' code use ``-G_gamma`` as a confidence, higher = ID; the
    ranking is the same, reversed.)

    Numerics: each term is ``exp(gamma * (log p_j + log(1 - p_j)))``, with
    ``log p`` from ``log_softmax`` and, for the top class, ``log(1 - p_j)``
    as ``logsumexp`` of the other logits minus ``logsumexp`` of all, so that
    a saturated ``p_j -> 1`` (or an underflowing ``p_j -> 0``) gives a small
    finite term, never NaN. Float16 / bfloat16 logits are scored in float32.

    For IBE / SCrIBE heads the full C-vector of logits, implicit background
    included, is used, as ``msp`` and ``entropy`` do.

    Args:
        gamma: Exponent ``gamma``, in ``(0, 1)``; small values amplify the
            differences near ``p = 0`` and ``p = 1``.
        top_m: Number ``M >= 1`` of largest probabilities summed; ``None``
            sums over all classes. An ``M`` larger than the number of
            classes ``C`` uses all ``C`` (so the default 100 is every class
            for Cityscapes' 19 or Pascal VOC's 21; it truncates ADE20K's 150).

    Shape:
        ``(N, C, H, W) -> (N, H, W)``; ``(N, C) -> (N,)``.

    References:
        Liu, Lochman & Zach, "GEN: Pushing the Limits of Softmax-Based
        Out-of-Distribution Detection", CVPR 2023, sec. 3; code:
        github.com/XixiLiu95/GEN (``benchmark.py``).
    """
    name = 'gen'

    def __init__(self, gamma: float = 0.1, top_m: Optional[int] = 100):
        self.gamma = check_number('gamma', gamma, 0.0, low_open=True)
        if self.gamma >= 1.0:
            raise InvalidValueError(
                f'`gamma` must be in (0, 1), got {self.gamma}')
        if top_m is not None and (isinstance(top_m, bool)
                                  or not isinstance(top_m, int)):
            raise InvalidTypeError('`top_m` must be an int >= 1 or None, got '
                                   f'{type(top_m).__name__} {top_m!r}')
        if top_m is not None and top_m < 1:
            raise InvalidValueError(
                f'`top_m` must be >= 1 or None, got {top_m}')
        self.top_m = top_m

    def score(self, inputs: ScoreInputs) -> Tensor:
        logits = inputs.logits
        num_classes = check_num_classes('gen', logits)
        if logits.dtype != torch.float64:
            logits = logits.float()
        log_p = torch.log_softmax(logits, dim=1)
        # log(1 - p_j): log1p(-p_j) is exact for p_j <= 1/2, i.e. every class
        # but possibly the top one; for the top one, 1 - p_top is the softmax
        # mass of the other classes, computed without cancellation.
        log_q = torch.log1p(-log_p.exp())
        top = log_p.argmax(dim=1, keepdim=True)
        others = logits.scatter(1, top, float('-inf'))
        log_q_top = torch.logsumexp(others, dim=1, keepdim=True) - \
            torch.logsumexp(logits, dim=1, keepdim=True)
        log_q = log_q.scatter(1, top, log_q_top)
        terms = torch.exp(self.gamma * (log_p + log_q))
        m = num_classes if self.top_m is None else min(self.top_m,
                                                       num_classes)
        if m < num_classes:
            idx = log_p.topk(m, dim=1).indices
            terms = terms.gather(1, idx)
        return terms.sum(dim=1)

    def __repr__(self) -> str:
        return f'GeneralizedEntropy(gamma={self.gamma}, top_m={self.top_m})'
