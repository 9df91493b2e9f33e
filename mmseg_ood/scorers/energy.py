"""Free energy."""
import torch
from torch import Tensor

from .base import OOD_SCORERS, BaseScorer, ScoreInputs, check_number


@OOD_SCORERS.register_module('energy')
class Energy(BaseScorer):
    """Helmholtz free energy: ``S(x) = -T log sum_c exp(s_c / T)``.

    Thesis eq. 3.7 (Liu et al. 2020). The logits include the classifier
    bias as the model computes them. Higher = more OOD.

    Args:
        temperature: ``T > 0``.

    Shape:
        ``(N, C, H, W) -> (N, H, W)``; ``(N, C) -> (N,)``.

    References:
        Liu, Wang, Owens & Li, "Energy-based Out-of-distribution Detection",
        NeurIPS 2020; norm-decoupling thesis, eq. 3.7.
    """
    name = 'energy'

    def __init__(self, temperature: float = 1.0):
        self.temperature = check_number('temperature', temperature, 0.0,
                                        low_open=True)

    def score(self, inputs: ScoreInputs) -> Tensor:
        t = self.temperature
        return -t * torch.logsumexp(inputs.logits.float() / t, dim=1)

    def __repr__(self) -> str:
        return f'Energy(temperature={self.temperature})'
