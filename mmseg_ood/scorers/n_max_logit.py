"""Normalized max logit (norm-decoupled)."""
from torch import Tensor

from .base import OOD_SCORERS, BaseScorer, ScoreInputs
from .decoupling import check_decoupling_args, decoupled_logits


@OOD_SCORERS.register_module('n_max_logit')
class NormalizedMaxLogit(BaseScorer):
    """Normalized max logit:
    ``S(x) = -max_c w_c^(eta-1) s_c / ||z||^(1-delta)``.

    ``eta = 1, delta = 0`` is thesis eq. 4.18 (``-max_c s_c / ||z||``);
    ``delta`` reintroduces part of the norm, eq. 5.7; ``eta`` is the
    class-weight exponent of eq. 4.22. ``s_c = W_c z``: the classifier bias
    is dropped as in the thesis (sec. 4.1) unless ``use_bias=True``. With
    ``delta = 0`` and no bias the score is invariant to scaling ``z``.
    Higher = more OOD.

    Args:
        eta: Class-weight exponent (any real; 1 leaves class weights).
        delta: Norm reintroduction in ``[0, 1]``; 0 fully normalizes.
        use_bias: Keep the classifier bias in ``s``.

    Shape:
        logits ``(N, C, H, W)``, embeddings ``(N, D, H, W)`` -> ``(N, H, W)``.

    References:
        Norm-decoupling thesis, eq. 4.18, 4.22 and 5.7.
    """
    name = 'n_max_logit'
    requires_embeddings = True

    def __init__(self, eta: float = 1.0, delta: float = 0.0,
                 use_bias: bool = False):
        self.eta, self.delta, self.use_bias = check_decoupling_args(
            eta, delta, use_bias)

    def score(self, inputs: ScoreInputs) -> Tensor:
        return -decoupled_logits(inputs, self.eta, self.delta,
                                 self.use_bias).amax(dim=1)

    def __repr__(self) -> str:
        return (f'NormalizedMaxLogit(eta={self.eta}, delta={self.delta}, '
                f'use_bias={self.use_bias})')
