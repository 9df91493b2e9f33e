"""The registered calibration-error metric (ECE of the ID predictions)."""
from __future__ import annotations

from typing import Optional

import torch

from mmseg.registry import METRICS
from ...labels import IGNORE_INDEX
from ...utils.arguments import strict_arguments
from ..accumulators.base import merge_across_ranks
from ..accumulators.ece import ECEAccumulator
from ..functional.inputs import to_numpy
from .accumulating_metric import AccumulatingMetric


@METRICS.register_module(name=['ECEMetric', 'CalibrationMetric'])
@strict_arguments
class ECEMetric(AccumulatingMetric):
    """ECE (and non-distinctiveness for background models) on ID data.

    Reads ``seg_logits`` (softmax over classes; IBE heads give the full
    k-vector with the implicit background) and ``gt_sem_seg`` of each
    sample; see :class:`ECEAccumulator` for the definitions.
    Accumulators are merged across ranks.

    Args:
        num_bins: ECE bins (15 as in Guo et al. 2017 and the IBE paper).
        background_index: Background class for IBE eq. 4, or ``None``.
        ignore_index: Label excluded.
        collect_device / prefix: As in mmengine's ``BaseMetric``.

    References:
        Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural
        Networks", ICML 2017 (ECE); "Implicit Background Estimation for
        Semantic Segmentation", eq. 4 (non-distinctiveness).
    """
    default_prefix = 'calibration'

    def __init__(self, num_bins: int = 15,
                 background_index: Optional[int] = None,
                 ignore_index: int = IGNORE_INDEX, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        # validates the arguments
        self._empty = ECEAccumulator(num_bins, background_index,
                                             ignore_index)

    def process_sample(self, sample: dict) -> None:
        logits = torch.as_tensor(to_numpy(sample['seg_logits']['data']))
        label = to_numpy(sample['gt_sem_seg']['data']).squeeze(0)
        self.accumulator('calibration', self._empty.empty_like).update(
            torch.softmax(logits.float(), dim=0), label, logits=logits)

    def compute_accumulated(self, local) -> dict:
        merged = merge_across_ranks(local, lambda _: self._empty.empty_like())
        return merged.get('calibration', self._empty).compute()
