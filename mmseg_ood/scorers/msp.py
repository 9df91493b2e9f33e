"""Maximum softmax probability (MSP)."""
from torch import Tensor

from .base import OOD_SCORERS, BaseScorer, ScoreInputs, softmax_stable


@OOD_SCORERS.register_module('msp')
class MaxSoftmax(BaseScorer):
    """Maximum softmax probability, as ``1 - max_c p(c|x)``.

    ``S(x) = 1 - max_c softmax(s)_c`` (thesis eq. 3.1, Hendrycks & Gimpel
    2017). We return ``1 - MSP`` rather than ``-MSP`` so that the score lies
    in ``[0, 1 - 1/C]``; the ranking, and every ranking metric, is the same.
    Higher = more OOD.

    Shape:
        ``(N, C, H, W) -> (N, H, W)``; ``(N, C) -> (N,)``.

    References:
        Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and
        Out-of-Distribution Examples", ICLR 2017; norm-decoupling thesis,
        eq. 3.1.
    """
    name = 'msp'

    def score(self, inputs: ScoreInputs) -> Tensor:
        return 1.0 - softmax_stable(inputs.logits).amax(dim=1)
