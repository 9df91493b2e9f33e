"""EAM: the ensemble of mask-level anomaly scores."""
import torch
from torch import Tensor

from ..base import OOD_SCORERS, BaseScorer, ScoreInputs


@OOD_SCORERS.register_module('eam')
class EnsembleOfMasks(BaseScorer):
    """``S(x) = 1 - sum_q sigmoid(m_q(x)) max_{k <= K} p_q(k)``, mask
    classification only.

    Each query q of a mask-classification head (MaskFormer / Mask2Former)
    is a binary recognizer: its mask ``sigmoid(m_q(x))`` says where it
    fires and ``max_{k <= K} p_q(k)``, the probability of its most likely
    *known* class, how sure it is that the region is one of the K inlier
    classes, with ``p_q = softmax(c_q)`` over the K known classes and "no
    object" (the last of the K + 1 class logits). A pixel that no query
    confidently claims for a known class gets a small sum, hence a high
    score. The sum is not normalised: where confident masks overlap it
    exceeds 1 and the score is negative; its range is ``(1 - Q, 1]``.
    Higher = more OOD, as the paper defines it (no sign flip).

    The exact form follows the authors' evaluation code
    (``mask2former/evaluation/ood_detection_evaluation.py``,
    ``DenseOODDetectionEvaluator.process``): softmax over all K + 1 logits,
    "no object" dropped *after* the softmax (``softmax(-1)[..., :-1]``, so
    the maximum runs over the known classes only and is not renormalised),
    mask logits through a sigmoid, ``1 - (mask * max_p).sum(0)``. Their
    masks are resized to the output size as logits before the sigmoid;
    here the score is computed where mmseg computes ``f`` (the sigmoid
    masks at the padded input size) and the map is then resized like
    ``seg_logits``, which differs only where the output is resized.

    Shape:
        ``(N, K, H, W) -> (N, H, W)``, with ``query_logits`` ``(N, Q, K +
        1)`` and ``mask_probs`` ``(N, Q, H, W)``.

    References:
        Grcić, Šarić & Šegvić, "On Advantages of Mask-level Recognition
        for Outlier-aware Segmentation", CVPR Workshops (VAND) 2023,
        arXiv:2301.03407, sec. 3 (the ensemble over masks, EAM); the
        authors' code github.com/matejgrcic/Open-set-M2F,
        ``ood_detection_evaluation.py``, ``DenseOODDetectionEvaluator.
        process``.
    """
    name = 'eam'
    requires_queries = True

    def score(self, inputs: ScoreInputs) -> Tensor:
        # the K known classes: "no object" (and the negative classes of a
        # head trained with them) dropped after the softmax
        num_known = inputs.logits.shape[1]
        known = torch.softmax(inputs.query_logits.float(),
                              dim=-1)[..., :num_known]
        confidence = known.max(dim=-1).values  # (N, Q)
        masks = inputs.mask_probs.float()
        spatial = 'hw'[:masks.dim() - 2]
        claimed = torch.einsum(f'nq,nq{spatial}->n{spatial}', confidence,
                               masks)
        return 1 - claimed
