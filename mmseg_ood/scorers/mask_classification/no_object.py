"""The "no object" mass of a mask-classification head."""
import torch
from torch import Tensor

from ..base import OOD_SCORERS, BaseScorer, ScoreInputs


@OOD_SCORERS.register_module('no_object')
class NoObjectMass(BaseScorer):
    """Share of a pixel's mask mass that goes to the "no object" class.

    ``S(x) = sum_q p_q(void) sigmoid(m_q(x)) / sum_q sigmoid(m_q(x))``, with
    ``p_q = softmax(c_q)`` over the K known classes and "no object" (the
    last of the K + 1 class logits), ``m_q`` the query's mask logits resized
    to the image as the head resizes them. The numerator is the "no
    object" term that mmseg drops when it forms the class scores ``f_k =
    sum_q p_q(k) sigmoid(m_q)``; dividing by the total mask mass (which is
    ``sum_k f_k`` plus that term) makes the score a fraction in ``[0, 1]``
    that does not depend on how many queries overlap the pixel: 1 where
    only "no object" queries claim it. Higher = more OOD.

    Shape:
        ``(N, K, H, W) -> (N, H, W)``, with ``query_logits`` ``(N, Q, K +
        1)`` and ``mask_probs`` ``(N, Q, H, W)``.

    References:
        The "no object" class of mask classification: Cheng, Schwing &
        Kirillov, "Per-Pixel Classification is Not All You Need for
        Semantic Segmentation" (MaskFormer), NeurIPS 2021, sec. 3 (``p_i``
        over K + 1 classes; its semantic inference drops the last).
        Used as an outlier cue e.g. by Nayal et al., "RbA", ICCV 2023.
    """
    name = 'no_object'
    requires_queries = True

    def score(self, inputs: ScoreInputs) -> Tensor:
        void = torch.softmax(inputs.query_logits.float(), dim=-1)[..., -1]
        masks = inputs.mask_probs.float()
        spatial = 'hw'[:masks.dim() - 2]
        void_mass = torch.einsum(f'nq,nq{spatial}->n{spatial}', void, masks)
        total = masks.sum(dim=1)
        return void_mass / total.clamp_min(torch.finfo(total.dtype).tiny)
