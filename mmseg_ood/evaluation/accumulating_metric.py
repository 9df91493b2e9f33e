"""The mmengine metric whose state is accumulators, not per-sample records."""
from __future__ import annotations

from typing import Dict

from mmengine.evaluator import BaseMetric

__all__ = ['AccumulatingMetric']


class AccumulatingMetric(BaseMetric):
    """Base of the package's streaming metrics.

    mmengine's ``BaseMetric`` appends one record per sample to
    ``self.results``, gathers every record on rank 0 and computes there:
    memory grows with the dataset. Here :meth:`process` updates
    accumulators (:mod:`~mmseg_ood.evaluation.accumulator`) instead, and
    :meth:`evaluate` lets the subclass merge them across ranks (with
    :func:`~mmseg_ood.evaluation.accumulator.merge_across_ranks`, so every
    rank returns the same numbers), prefixes the keys and resets the state,
    also when computing fails.

    Subclasses implement ``process``, :meth:`compute_accumulated` and
    :meth:`reset`.
    """

    def reset(self) -> None:
        """Forget every sample seen (called after each evaluation)."""
        raise NotImplementedError

    def compute_accumulated(self) -> Dict[str, object]:
        """Merge the accumulators across ranks and compute the metrics
        (keys without the prefix)."""
        raise NotImplementedError

    def evaluate(self, size: int) -> dict:
        """Metrics of every sample processed on every rank since the last
        evaluation; ``size`` (the dataset length) is not needed."""
        try:
            results = self.compute_accumulated()
        finally:
            self.reset()
        pre = f'{self.prefix}/' if self.prefix else ''
        return {pre + k: v for k, v in results.items()}

    def compute_metrics(self, results: list) -> dict:  # pragma: no cover
        raise NotImplementedError(
            f'{type(self).__name__} computes in evaluate()')
