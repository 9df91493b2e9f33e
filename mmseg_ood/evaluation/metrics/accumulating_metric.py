"""The mmengine metric whose state is accumulators, not per-sample records."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Hashable, Iterator, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric

from ...formats.score_map_spill import ScoreMapSpill
from .sampler_padding import PerSampleAccumulators

__all__ = ['AccumulatingMetric', 'plain_numbers']


def plain_numbers(value):
    """``value`` with every numpy scalar (and 0-d tensor) as the Python
    ``int`` / ``float`` / ``bool`` it holds, inside dicts, lists and tuples
    too; arrays and other objects are kept as they are, NaN stays NaN. A
    ``float32`` becomes the float of its shortest decimal (``70.83``), the
    number mmseg's tables show.

    mmengine's ``LoggerHook`` writes a metric that is not a plain Python
    number (a ``numpy.int64`` count) as ``null`` in the JSON log; the
    metrics return plain numbers so that every count reaches it.

    Args:
        value: A metric value or a (nested) dict / list / tuple of them.

    Returns:
        The same structure with plain numbers.
    """
    if isinstance(value, np.floating) and value.itemsize < 8:
        # float32 70.83 -> 70.83, not 70.83000183105469: the shortest
        # decimal that reads back as the same float32
        return float(str(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        out = {k: plain_numbers(v) for k, v in value.items()}
        return OrderedDict(out) if isinstance(value, OrderedDict) else out
    if isinstance(value, (list, tuple)) and not hasattr(value, '_fields'):
        return type(value)(plain_numbers(v) for v in value)
    if getattr(value, 'ndim', None) == 0 and hasattr(value, 'item') and \
            not isinstance(value, np.ndarray):
        return value.item()  # a 0-d tensor
    return value


class AccumulatingMetric(BaseMetric):
    """Base of the package's streaming metrics.

    mmengine's ``BaseMetric`` appends one record per sample to
    ``self.results``, gathers every record on rank 0 and computes there:
    memory grows with the dataset. Here :meth:`process_sample` updates
    accumulators (:mod:`~mmseg_ood.evaluation.accumulators.base`) instead,
    kept by ``samples`` (a :class:`~mmseg_ood.evaluation.metrics.
    sampler_padding.PerSampleAccumulators`), which leaves out the repeats
    that distributed sampling pads the last batch with, as mmengine does
    for records. :meth:`evaluate` hands this rank's accumulators to
    :meth:`compute_accumulated`, which merges them across ranks (with
    :func:`~mmseg_ood.evaluation.accumulators.base.merge_across_ranks`, so
    every rank returns the same numbers); then it prefixes the keys and
    resets the state, also when computing fails.

    A metric that needs a second look at the maps once a threshold is
    known (component metrics at the best-F1 threshold, an exact quantile)
    spills each sample's labels and maps to disk with :meth:`spill`
    (a :class:`~mmseg_ood.formats.score_map_spill.ScoreMapSpill` under
    ``self.spill_dir``, or the system's temporary directory) and reads them
    back with :meth:`spilled`; a padding repeat is left out of them too,
    and the files go away at :meth:`reset`.

    Subclasses implement :meth:`process_sample` and
    :meth:`compute_accumulated`, and extend :meth:`reset` for state of
    their own.

    Args:
        collect_device: Device mmengine gathers results on across ranks,
            ``'cpu'`` or ``'gpu'`` (mmengine's ``BaseMetric`` argument).
        prefix: Prefix of the result keys (``'<prefix>/<key>'``); ``None``
            uses the class's ``default_prefix``.
    """

    def __init__(self, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        self.samples = PerSampleAccumulators()
        self._spill: Optional[ScoreMapSpill] = None
        super().__init__(collect_device=collect_device, prefix=prefix)

    def reset(self) -> None:
        """Forget every sample seen and remove the spilled maps (called
        after each evaluation)."""
        self.samples.reset()
        if self._spill is not None:
            self._spill.close()
        self._spill = None

    def spill(self, labels: np.ndarray, maps: Dict[str, np.ndarray],
              tag: Optional[str] = None) -> None:
        """Write the current sample's labels and maps to this rank's
        spill."""
        if self._spill is None:
            self._spill = ScoreMapSpill(getattr(self, 'spill_dir', None))
        self._spill.append(self.samples.num_samples, labels, maps, tag=tag)

    def spilled(self) -> Iterator[Tuple[Optional[str], np.ndarray,
                                        Dict[str, np.ndarray]]]:
        """``(tag, labels, maps)`` of each sample this rank spilled, in
        order, without a padding repeat."""
        if self._spill is not None:
            yield from self._spill.read_tagged()

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
        which tells the padding repeats), as plain Python numbers
        (:func:`plain_numbers`)."""
        try:
            local = self.samples.finish(size)
            if self._spill is not None and self.samples.last_dropped:
                self._spill.drop(self.samples.num_samples)
            results = self.compute_accumulated(local)
        finally:
            self.reset()
        pre = f'{self.prefix}/' if self.prefix else ''
        return {pre + k: plain_numbers(v) for k, v in results.items()}

    def compute_metrics(self, results: list) -> dict:  # pragma: no cover
        raise NotImplementedError(
            f'{type(self).__name__} computes in evaluate()')
