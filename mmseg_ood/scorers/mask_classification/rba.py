"""RbA: "Rejected by All" known classes."""
import torch
from torch import Tensor

from ..base import OOD_SCORERS, BaseScorer, ScoreInputs


@OOD_SCORERS.register_module('rba')
class RejectedByAll(BaseScorer):
    """``RbA(x) = -sum_{k=1..K} tanh(f_k(x))``, mask classification only.

    ``f_k(x) = sum_q softmax(c_q)_k * sigmoid(m_q(x))`` are the per-pixel
    class scores of a mask-classification head (MaskFormer / Mask2Former;
    mmseg's ``seg_logits`` for these heads, in ``[0, Q]``): each query q
    votes for class k with its class probability, weighted by its mask. The
    queries behave like one-vs-all classifiers, so ``tanh(f_k)`` in
    ``[0, 1)`` is the (soft) event "class k claims the pixel", and a pixel
    that every known class rejects (all ``f_k`` near 0) is an outlier: RbA
    is minus their sum, in ``(-K, 0]``; higher = more OOD, as the paper
    defines it (no sign flip needed). ``tanh`` squashes the sum so that one
    confident class saturates instead of several overlapping ones adding
    up.

    Shape:
        ``(N, K, H, W) -> (N, H, W)``.

    References:
        Nayal, Yavuz, Henriques & Guney, "RbA: Segmenting Unknown Regions
        Rejected by All", ICCV 2023, sec. 3 (the RbA score, Fig. 2; the
        squashing function is tanh, as in the authors' evaluation code
        ``support.py: get_RbA``, ``-logits.tanh().sum(dim=0)``).
    """
    name = 'rba'
    requires_mask_head = True

    def score(self, inputs: ScoreInputs) -> Tensor:
        return -torch.tanh(inputs.logits.float()).sum(dim=1)
