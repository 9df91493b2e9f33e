"""UNO: uncertainty ensembled with negative objectness."""
import torch
from torch import Tensor

from ..base import OOD_SCORERS, BaseScorer, ScoreInputs, UnsupportedScorerError


@OOD_SCORERS.register_module('uno')
class UncertaintyNegativeObjectness(BaseScorer):
    """``UNO(x) = 1 - max_{k <= K} P(k | x) + P(neg | x)``, for a
    mask-classification head trained with a negative class.

    A UNO head has K + 2 class outputs per query: the K known classes, the
    negative class (trained on pasted outliers) and "no object"
    (:class:`~mmseg_ood.models.heads.OutlierMask2FormerHead` with
    ``negative_class=True``). The pixel posterior over the K + 1 classes
    "known or negative" is mask-level recognition's semantic inference,
    normalised: ``g_j(x) = sum_q softmax(c_q)_j sigmoid(m_q(x))`` for the K
    known classes and the negative one ("no object" dropped), ``P(j | x) =
    g_j(x) / sum_j' g_j'(x)``. The score adds the two cues the paper
    ensembles: the closed-set uncertainty ``1 - max_k P(k | x)`` over the K
    known classes, and the negative objectness ``P(neg | x)``, so a pixel is
    an outlier if the known classes disagree or if the negative class
    claims it. In ``[0, 2]``; higher = more OOD.

    The paper (BMVC 2024) is not among the project's papers; this follows
    its abstract and sec. 3 as published on arXiv (2402.15374: "an ensemble
    of in-distribution uncertainty and the posterior of the negative class",
    K + 2-way dense prediction with mask-level recognition); the
    normalisation of the pixel posterior over the K + 1 classes is this
    implementation's reading, equal in ranking to the unnormalised
    ``max`` / ``neg`` terms only where the total mass is constant.

    Shape:
        ``(N, K, H, W) -> (N, H, W)``, with ``query_logits`` ``(N, Q, K +
        2)`` and ``mask_probs`` ``(N, Q, H, W)``.

    References:
        Delić, Grcić & Šegvić, "Outlier detection by ensembling uncertainty
        with negative objectness", BMVC 2024 (arXiv 2402.15374), sec. 3
        (the UNO score) and sec. 4 (K + 2-way mask classification).
    """
    name = 'uno'
    requires_queries = True

    def check_supported(self, inputs: ScoreInputs) -> None:
        super().check_supported(inputs)
        if inputs.num_negative_classes != 1:
            raise UnsupportedScorerError(
                "scorer 'uno' needs a mask-classification head trained with "
                'one negative class (OutlierMask2FormerHead with '
                'negative_class=True: K + 2 class outputs); this head has '
                f'{inputs.query_logits.shape[2]} class outputs for '
                f'{inputs.logits.shape[1]} classes')

    def score(self, inputs: ScoreInputs) -> Tensor:
        k = inputs.logits.shape[1]
        probs = torch.softmax(inputs.query_logits.float(), dim=-1)[..., :-1]
        masks = inputs.mask_probs.float()
        spatial = 'hw'[:masks.dim() - 2]
        g = torch.einsum(f'nqj,nq{spatial}->nj{spatial}', probs, masks)
        total = g.sum(dim=1).clamp_min(torch.finfo(g.dtype).tiny)
        known_max = g[:, :k].amax(dim=1) / total
        negative = g[:, k] / total
        return 1.0 - known_max + negative
