"""Deep nearest neighbours: distance to the k-th nearest ID embedding."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import InvalidValueError
from ..base import OOD_SCORERS, ScoreInputs
from .base import FeatureSpaceScorer
from .statistics import StatisticsSpec


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(f'`{name}` must be an int >= 1, got '
                                f'{value!r}')
    return value


@OOD_SCORERS.register_module('knn')
class KNN(FeatureSpaceScorer):
    """kNN: ``S(x) = ||z / ||z|| - b_(k)||``, the distance to the k-th
    nearest normalized ID embedding.

    Sun, Ming, Zhu & Li (2022), sec. 3 (eq. 2-3): embeddings are
    L2-normalized, the bank holds the normalized embeddings of (a uniform
    ``alpha`` share of) the ID training data, and the score is the
    distance to the k-th nearest bank entry; their confidence is its
    negation. Higher = more OOD. With unit vectors, ``||q - b||^2 = 2 - 2
    q . b``: the k-th largest dot product gives the k-th smallest distance.

    Per pixel: the bank is a uniform sample of ``bank_size`` ID pixel
    embeddings (bottom-hash sampling, see
    :mod:`~mmseg_ood.scorers.feature_space.statistics`); the paper's
    ImageNet setting (``alpha = 1 %``, ``k = 10``) suggests ``k = 10`` for
    about ten thousand entries. Pixels are scored in chunks of
    ``chunk_size``, so memory is ``chunk_size x bank_size`` floats whatever
    the image; the cost is ``O(M D)`` per pixel.

    Args:
        k: The neighbour, ``1 <= k <= bank_size``.
        bank_size: ID pixels in the bank.
        chunk_size: Pixels scored at a time.
        stats_file: Fitted statistics (see :class:`FeatureSpaceScorer`).

    Shape:
        embeddings ``(N, D, H, W)`` (logits ``(N, C, H, W)``) ->
        ``(N, H, W)``; ``(N, D)`` -> ``(N,)``.

    References:
        Sun, Ming, Zhu & Li, "Out-of-Distribution Detection with Deep
        Nearest Neighbors", ICML 2022, eq. (2)-(3).
    """
    name = 'knn'

    def __init__(self, k: int = 10, bank_size: int = 10000,
                 chunk_size: int = 4096, stats_file: Optional[str] = None):
        self.k = _positive_int('k', k)
        self.bank_size = _positive_int('bank_size', bank_size)
        self.chunk_size = _positive_int('chunk_size', chunk_size)
        if self.k > self.bank_size:
            raise InvalidValueError(
                f'`k` ({k}) must be <= `bank_size` ({bank_size})')
        super().__init__(stats_file)

    def statistics_spec(self) -> StatisticsSpec:
        return StatisticsSpec(bank_size=self.bank_size)

    def prepare(self, statistics) -> None:
        bank = statistics.bank_sample(self.bank_size)
        if len(bank) < self.k:
            raise InvalidValueError(
                f"scorer 'knn': the bank holds {len(bank)} ID pixels, fewer "
                f'than k={self.k}')
        self.bank = F.normalize(torch.as_tensor(bank, dtype=torch.float32),
                                dim=1).numpy()

    def score_fitted(self, inputs: ScoreInputs) -> Tensor:
        z = inputs.embeddings.float()
        flat = F.normalize(z.movedim(1, -1).reshape(-1, z.shape[1]), dim=1)
        bank = self.on_device('bank', self.bank, flat)
        out = flat.new_empty(len(flat))
        for start in range(0, len(flat), self.chunk_size):
            chunk = flat[start:start + self.chunk_size]
            kth = (chunk @ bank.t()).topk(self.k, dim=1).values[:, -1]
            out[start:start + len(chunk)] = (2 - 2 * kth).clamp_min(0).sqrt()
        return out.reshape((z.shape[0], ) + tuple(z.shape[2:]))

    def __repr__(self) -> str:
        return f'KNN(k={self.k}, bank_size={self.bank_size})'
