"""Normalized energy with class-weight exponent (norm-decoupled)."""
import torch
from torch import Tensor

from .base import OOD_SCORERS, BaseScorer, ScoreInputs, check_number
from .decoupling import check_decoupling_args, decoupled_logits


@OOD_SCORERS.register_module('n_energy')
class NormalizedEnergy(BaseScorer):
    """Normalized energy:
    ``S(x) = -T log sum_c exp(w_c^(eta-1) s_c / (||z||^(1-delta) T))``.

    ``eta = 1, delta = 0`` is thesis eq. 4.20 (eq. 4.21 with ``T = 1``);
    ``eta`` is the class-weight exponent of eq. 4.23 (the thesis found
    ``eta = 1.5`` best; ``eta = 0`` equals energy with unit-norm class
    weights); ``delta`` reintroduces part of the norm as in eq. 5.6-5.7.
    ``s_c = W_c z``: the classifier bias is dropped as in the thesis
    (sec. 4.1) unless ``use_bias=True``. Higher = more OOD.

    Args:
        temperature: ``T > 0``.
        eta: Class-weight exponent (any real).
        delta: Norm reintroduction in ``[0, 1]``.
        use_bias: Keep the classifier bias in ``s``.

    Shape:
        logits ``(N, C, H, W)``, embeddings ``(N, D, H, W)`` -> ``(N, H, W)``.

    References:
        Norm-decoupling thesis, eq. 4.20, 4.23, 5.7.
    """
    name = 'n_energy'
    requires_embeddings = True

    def __init__(self, temperature: float = 1.0, eta: float = 1.0,
                 delta: float = 0.0, use_bias: bool = False):
        self.temperature = check_number('temperature', temperature, 0.0,
                                        low_open=True)
        self.eta, self.delta, self.use_bias = check_decoupling_args(
            eta, delta, use_bias)

    def score(self, inputs: ScoreInputs) -> Tensor:
        t = self.temperature
        s = decoupled_logits(inputs, self.eta, self.delta, self.use_bias)
        return -t * torch.logsumexp(s / t, dim=1)

    def __repr__(self) -> str:
        return (f'NormalizedEnergy(temperature={self.temperature}, '
                f'eta={self.eta}, delta={self.delta}, '
                f'use_bias={self.use_bias})')
