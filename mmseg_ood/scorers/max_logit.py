"""Maximum logit."""
from torch import Tensor

from .base import OOD_SCORERS, BaseScorer, ScoreInputs


@OOD_SCORERS.register_module('max_logit')
class MaxLogit(BaseScorer):
    """Negative maximum logit: ``S(x) = -max_c s_c`` (thesis eq. 3.3).

    The logits include the classifier bias as the model computes them.
    Higher = more OOD.

    Shape:
        ``(N, C, H, W) -> (N, H, W)``; ``(N, C) -> (N,)``.

    References:
        Hendrycks et al., "Scaling Out-of-Distribution Detection for
        Real-World Settings", ICML 2022; norm-decoupling thesis, eq. 3.3.
    """
    name = 'max_logit'

    def score(self, inputs: ScoreInputs) -> Tensor:
        return -inputs.logits.amax(dim=1)
