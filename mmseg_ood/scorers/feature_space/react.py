"""ReAct: rectified activations, then the energy."""
from __future__ import annotations

from typing import Optional

from torch import Tensor

from ..base import OOD_SCORERS, ScoreInputs, check_number
from .base import FeatureSpaceScorer, classifier_logits, free_energy
from .statistics import StatisticsSpec


@OOD_SCORERS.register_module('react')
class ReAct(FeatureSpaceScorer):
    """ReAct: ``S(x) = -log sum_c exp(W_c min(z, t) + b_c)``.

    Sun, Guo & Li (2021), eq. (1)-(2): every activation of the penultimate
    layer is clipped at ``t``, the ``p``-th percentile of the activations
    on ID data (``p = 90`` in the paper), and the logits recomputed from
    the clipped activations are scored by the energy (Liu et al. 2020,
    T = 1). Higher = more OOD.

    Per pixel: ``z`` is a pixel's embedding (the input of the final 1x1
    classifier) and ``t`` the percentile over every value of every ID
    pixel embedding (``FeatureStatistics.activation_percentile``, to
    ``2^-11`` of its value).

    Args:
        percentile: ``p`` in ``[0, 100]``.
        stats_file: Fitted statistics (see :class:`FeatureSpaceScorer`).

    Shape:
        embeddings ``(N, D, H, W)`` (logits ``(N, C, H, W)``) ->
        ``(N, H, W)``; ``(N, D)`` -> ``(N,)``.

    References:
        Sun, Guo & Li, "ReAct: Out-of-distribution Detection With Rectified
        Activations", NeurIPS 2021, eq. (1)-(2), sec. 3.
    """
    name = 'react'

    def __init__(self, percentile: float = 90.0,
                 stats_file: Optional[str] = None):
        self.percentile = check_number('percentile', percentile, 0.0)
        if self.percentile > 100:
            from ...errors import InvalidValueError
            raise InvalidValueError(
                f'`percentile` must be in [0, 100], got {percentile}')
        super().__init__(stats_file)

    def statistics_spec(self) -> StatisticsSpec:
        return StatisticsSpec(histogram=True)

    def prepare(self, statistics) -> None:
        self.threshold = statistics.activation_percentile(self.percentile)

    def score_fitted(self, inputs: ScoreInputs) -> Tensor:
        z = inputs.embeddings.float().clamp_max(self.threshold)
        return free_energy(classifier_logits(z, inputs.cls_weight,
                                             inputs.cls_bias))

    def __repr__(self) -> str:
        return f'ReAct(percentile={self.percentile})'
