"""Embedding norm (Norm-N)."""
from torch import Tensor

from .base import OOD_SCORERS, BaseScorer, ScoreInputs, embedding_norm


@OOD_SCORERS.register_module('norm')
class EmbeddingNorm(BaseScorer):
    """Negative embedding norm: ``S(x) = -||z||_2``.

    ``z`` is the input of the final linear classifier. The thesis' "Norm-N"
    baseline (ch. 5): a smaller norm is taken as more OOD; the thesis finds
    it the weakest score, since ID and OOD norms are distributed alike (the
    motivation of sec. 4.1 for dividing it out). Higher = more OOD.

    Shape:
        ``(N, D, H, W) -> (N, H, W)``; ``(N, D) -> (N,)``.

    References:
        Norm-decoupling thesis, sec. 4.1 and ch. 5 ("Norm-N" baseline).
    """
    name = 'norm'
    requires_embeddings = True

    def score(self, inputs: ScoreInputs) -> Tensor:
        return -embedding_norm(inputs)[:, 0].float()
