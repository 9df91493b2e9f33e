"""The base of the scorers fitted on ID embeddings."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from ...errors import InvalidValueError
from ..base import BaseScorer, ScoreInputs
from .statistics import FeatureStatistics, StatisticsSpec

__all__ = ['FeatureSpaceScorer', 'classifier_logits', 'free_energy']


def classifier_logits(embeddings: Tensor, weight: Tensor,
                      bias: Optional[Tensor]) -> Tensor:
    """``W z + b`` per pixel: ``(N, D, ...)`` -> ``(N, C, ...)``, as the 1x1
    classifier computes it from (possibly modified) embeddings or weights.

    Args:
        embeddings: ``z``, ``(N, D, ...)``.
        weight: ``W``, ``(C, D)``.
        bias: ``b``, ``(C,)``, or ``None``.
    """
    out = (embeddings.movedim(1, -1) @ weight.t().to(embeddings.dtype))
    if bias is not None:
        out = out + bias.to(out.dtype)
    return out.movedim(-1, 1)


def free_energy(logits: Tensor) -> Tensor:
    """``-log sum_c exp(s_c)`` over dim 1 (Liu et al. 2020, T = 1), in
    float32 or wider: higher = more OOD.

    Args:
        logits: ``(N, C, ...)``.
    """
    return -torch.logsumexp(logits.float(), dim=1)


class FeatureSpaceScorer(BaseScorer):
    """A scorer that reads the embeddings ``z`` and needs statistics of ID
    embeddings (:class:`FeatureStatistics`).

    The statistics come from a fit on ID data (``ood_test --fit-on``, or
    :func:`~mmseg_ood.apis.fit_feature_statistics`), given as the file it
    wrote (``stats_file``) or set with :meth:`set_statistics`. Quantities
    that depend on the classifier (DICE's mask, ViM's subspace) are derived
    at the first score and kept while the classifier stays the same.

    Args:
        stats_file: A ``.npz`` written by :meth:`FeatureStatistics.save`.

    Attributes:
        requires_fit: Always ``True``: the tools fit the statistics first.
    """
    requires_embeddings = True
    requires_fit = True

    def __init__(self, stats_file: Optional[str] = None):
        self.statistics: Optional[FeatureStatistics] = None
        self._derived: dict = {}
        if stats_file is not None:
            self.set_statistics(FeatureStatistics.load(stats_file))

    def statistics_spec(self) -> StatisticsSpec:
        """What the fit must collect for this scorer."""
        raise NotImplementedError

    def set_statistics(self, statistics: FeatureStatistics
                       ) -> 'FeatureSpaceScorer':
        """Use ``statistics``; they must cover :meth:`statistics_spec`."""
        if not isinstance(statistics, FeatureStatistics):
            raise InvalidValueError(
                f"scorer '{self.name}' needs FeatureStatistics, got "
                f'{type(statistics).__name__}')
        wanted = self.statistics_spec()
        if not statistics.spec.covers(wanted):
            raise InvalidValueError(
                f"scorer '{self.name}' needs statistics with "
                f'{dict(wanted)}; these were collected with '
                f'{dict(statistics.spec)}: fit them again')
        if not statistics.pixels:
            raise InvalidValueError(
                f"scorer '{self.name}': the statistics hold no pixels")
        self.statistics = statistics
        self._derived = {}
        self.prepare(statistics)
        return self

    def prepare(self, statistics: FeatureStatistics) -> None:
        """Derive what does not depend on the classifier (a subclass may
        override)."""

    @property
    def is_fitted(self) -> bool:
        return self.statistics is not None

    def fitted(self) -> FeatureStatistics:
        """The statistics; an error naming the remedy without them."""
        if self.statistics is None:
            raise RuntimeError(
                f"scorer '{self.name}' has no ID statistics: run ood_test "
                'with --fit-on train|val, pass `stats_file`, or call '
                'set_statistics()')
        return self.statistics

    def check_dimension(self, inputs: ScoreInputs) -> None:
        """The embeddings must have the fitted D."""
        d = self.fitted().dim
        if inputs.embeddings.shape[1] != d:
            raise InvalidValueError(
                f"scorer '{self.name}' was fitted on embeddings of D={d}, "
                f'got D={inputs.embeddings.shape[1]}')

    def for_classifier(self, inputs: ScoreInputs,
                       derive: Callable[[Tensor, Optional[Tensor]], dict]
                       ) -> dict:
        """``derive(W, b)`` (tensors derived from the classifier), computed
        once and reused while ``W`` and ``b`` stay equal."""
        w, b = inputs.cls_weight, inputs.cls_bias
        if w is None:
            raise InvalidValueError(
                f"scorer '{self.name}' needs the classifier weight; it was "
                'not captured')
        cached = self._derived.get('classifier')
        if cached is not None and cached[0].shape == w.shape and \
                cached[0].device == w.device and torch.equal(cached[0], w) \
                and ((b is None and cached[1] is None) or
                     (b is not None and cached[1] is not None
                      and torch.equal(cached[1], b))):
            return cached[2]
        w, b = w.detach().clone(), None if b is None else b.detach().clone()
        self._derived.pop('tensors', None)  # converted from the old ones
        values = derive(w, b)
        self._derived['classifier'] = (w, b, values)
        return values

    def on_device(self, key: str, array, like: Tensor) -> Tensor:
        """A derived numpy array as a tensor on ``like``'s device, float32
        (converted once per device)."""
        cache = self._derived.setdefault('tensors', {})
        k = (key, like.device)
        if k not in cache:
            cache[k] = torch.as_tensor(array, dtype=torch.float32,
                                       device=like.device)
        return cache[k]

    def score(self, inputs: ScoreInputs) -> Tensor:
        self.check_dimension(inputs)
        return self.score_fitted(inputs)

    def score_fitted(self, inputs: ScoreInputs) -> Tensor:
        """The score, with statistics known to fit the embeddings."""
        raise NotImplementedError
