"""The registered representation metric."""
from __future__ import annotations

from typing import Optional

from mmseg.registry import METRICS
from ...utils.arguments import strict_arguments
from ..accumulators.base import merge_across_ranks
from ..accumulators.representation import RepresentationAccumulator
from ..functional.inputs import to_numpy
from .accumulating_metric import AccumulatingMetric


@METRICS.register_module()
@strict_arguments
class RepresentationMetric(AccumulatingMetric):
    """Representation analysis of the logits (SCrIBE sec. 4, Fig. 3-4).

    Reads ``seg_logits`` of each sample and accumulates
    :class:`RepresentationAccumulator` statistics (merged across ranks).
    Reports the number of pixels, the accumulated explained variance and
    the effective dimensionality (``dims_90``, ``dims_95``); the merged
    accumulator (for the auto-correlation matrices) is kept in
    :attr:`last_accumulator`.

    Args:
        num_classes: The length of the logit vectors, or ``None`` to take it
            from the first sample.
        collect_device / prefix: As in mmengine's ``BaseMetric``.

    References:
        "SCrIBE: Sigmoid + IBE", sec. 4, "Inspection of Representation
        Structure", Fig. 3 (normalized auto-correlation) and Fig. 4
        (accumulated explained variance).
    """
    default_prefix = 'representation'

    def __init__(self, num_classes: Optional[int] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if num_classes is not None:
            RepresentationAccumulator(num_classes)  # validates
        self.num_classes = num_classes
        self.last_accumulator: Optional[RepresentationAccumulator] = None

    def process_sample(self, sample: dict) -> None:
        logits = to_numpy(sample['seg_logits']['data'])
        k = self.num_classes or logits.shape[0]
        self.accumulator('representation',
                         lambda: RepresentationAccumulator(k)).update(logits)

    def compute_accumulated(self, local) -> dict:
        merged = merge_across_ranks(
            local, lambda _: RepresentationAccumulator(self.num_classes or 2))
        acc = merged.get('representation')
        self.last_accumulator = acc
        if acc is None:
            return dict(pixels=0)
        return acc.compute()
