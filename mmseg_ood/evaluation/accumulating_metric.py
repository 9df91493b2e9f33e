"""The mmengine metric whose state is accumulators, not per-sample records."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Hashable, Optional, Sequence

from mmengine.evaluator import BaseMetric

from .sampler_padding import PerSampleAccumulators

__all__ = ['AccumulatingMetric']


class AccumulatingMetric(BaseMetric):
    """Base of the package's streaming metrics.

    mmengine's ``BaseMetric`` appends one record per sample to
    ``self.results``, gathers every record on rank 0 and computes there:
    memory grows with the dataset. Here :meth:`process_sample` updates
    accumulators (:mod:`~mmseg_ood.evaluation.accumulator`) instead, kept by
    :attr:`samples` (:class:`~mmseg_ood.evaluation.sampler_padding.
    PerSampleAccumulators`), which leaves out the repeats that distributed
    sampling pads the last batch with, as mmengine does for records.
    :meth:`evaluate` hands this rank's accumulators to
    :meth:`compute_accumulated`, which merges them across ranks (with
    :func:`~mmseg_ood.evaluation.accumulator.merge_across_ranks`, so every
    rank returns the same numbers); then it prefixes the keys and resets
    the state, also when computing fails.

    Subclasses implement :meth:`process_sample` and
    :meth:`compute_accumulated`, and extend :meth:`reset` for state of
    their own.
    """

    def __init__(self, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        self.samples = PerSampleAccumulators()
        super().__init__(collect_device=collect_device, prefix=prefix)

    def reset(self) -> None:
        """Forget every sample seen (called after each evaluation)."""
        self.samples.reset()

    def accumulator(self, key: Hashable, factory):
        """The accumulator ``key`` to update with the current sample
        (created by ``factory()`` on first use)."""
        return self.samples.get(key, factory)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Update the accumulators with each sample of the batch."""
        for sample in data_samples:
            self.samples.start_sample()
            self.process_sample(sample)

    def process_sample(self, sample: dict) -> None:
        """Update the accumulators (:meth:`accumulator`) with one sample."""
        raise NotImplementedError

    def compute_accumulated(
            self, local: 'OrderedDict[Hashable, object]') -> Dict[str, object]:
        """Merge this rank's accumulators ``local`` (key -> accumulator, in
        first-use order) across ranks and compute the metrics (keys without
        the prefix)."""
        raise NotImplementedError

    def evaluate(self, size: int) -> dict:
        """Metrics of every sample processed on every rank since the last
        evaluation, each dataset sample once (``size``: the dataset length,
        which tells the padding repeats)."""
        try:
            results = self.compute_accumulated(self.samples.finish(size))
        finally:
            self.reset()
        pre = f'{self.prefix}/' if self.prefix else ''
        return {pre + k: v for k, v in results.items()}

    def compute_metrics(self, results: list) -> dict:  # pragma: no cover
        raise NotImplementedError(
            f'{type(self).__name__} computes in evaluate()')
