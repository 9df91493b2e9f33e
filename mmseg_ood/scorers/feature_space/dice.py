"""DICE: the classifier sparsified by ID contribution, then the energy."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from ...errors import InvalidValueError
from ..base import OOD_SCORERS, ScoreInputs, check_number
from .base import FeatureSpaceScorer, classifier_logits, free_energy
from .statistics import StatisticsSpec


@OOD_SCORERS.register_module('dice')
class DICE(FeatureSpaceScorer):
    """DICE: ``S(x) = -log sum_c exp((M . W)_c z + b_c)``.

    Sun & Li (2022), sec. 3: the contribution matrix ``V = W . z_bar``
    (``V_cj = W_cj z_bar_j``, ``z_bar`` the mean ID embedding, eq. 3) ranks
    the weights; the mask ``M`` keeps the weights whose contribution is
    above the ``p``-th percentile of ``V`` (``p`` = the sparsity, eq. 4),
    and the logits of the sparsified classifier are scored by the energy
    (T = 1). Higher = more OOD.

    Per pixel: ``z_bar`` is the mean over all ID pixel embeddings; the
    percentile is numpy's / torch's linear one over the ``C D`` entries of
    ``V``, and kept means ``V_cj >`` it (as pytorch-ood).

    Args:
        sparsity: ``p`` in ``[0, 100)``, the share of weights dropped (the
            paper: 90 on CIFAR, 70 on ImageNet).
        stats_file: Fitted statistics (see :class:`FeatureSpaceScorer`).

    Shape:
        embeddings ``(N, D, H, W)`` (logits ``(N, C, H, W)``) ->
        ``(N, H, W)``; ``(N, D)`` -> ``(N,)``.

    References:
        Sun & Li, "DICE: Leveraging Sparsification for Out-of-Distribution
        Detection", ECCV 2022, eq. (3)-(5).
    """
    name = 'dice'

    def __init__(self, sparsity: float = 90.0,
                 stats_file: Optional[str] = None):
        self.sparsity = check_number('sparsity', sparsity, 0.0)
        if self.sparsity >= 100:
            raise InvalidValueError(
                f'`sparsity` must be in [0, 100), got {sparsity}')
        super().__init__(stats_file)

    def statistics_spec(self) -> StatisticsSpec:
        return StatisticsSpec(moments=True)

    def masked_weight(self, weight: Tensor) -> Tensor:
        """``M . W`` for the classifier weight ``W`` ``(C, D)``."""
        mean = torch.as_tensor(self.fitted().mean(), dtype=torch.float64,
                               device=weight.device)
        contribution = weight.double() * mean[None]
        threshold = np.percentile(contribution.cpu().numpy(), self.sparsity)
        return torch.where(contribution > threshold, weight,
                           torch.zeros_like(weight))

    def score_fitted(self, inputs: ScoreInputs) -> Tensor:
        derived = self.for_classifier(
            inputs, lambda w, b: dict(weight=self.masked_weight(w)))
        return free_energy(classifier_logits(inputs.embeddings.float(),
                                             derived['weight'].float(),
                                             inputs.cls_bias))

    def __repr__(self) -> str:
        return f'DICE(sparsity={self.sparsity})'
