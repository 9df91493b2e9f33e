"""The registered background-IoU metric (IBE Table 2)."""
from __future__ import annotations

from typing import Optional

from mmseg.registry import METRICS

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX
from ...utils.arguments import strict_arguments
from ..accumulators.background_iou import (BackgroundIoUAccumulator,
                                           background_pixel_counts,
                                           check_class_index)
from ..accumulators.base import merge_across_ranks
from .accumulating_metric import AccumulatingMetric


@METRICS.register_module()
@strict_arguments
class BackgroundIoUMetric(AccumulatingMetric):
    """IoU of the background class on a whole-image OOD set (IBE Table 2).

    Reads each sample's ``pred_sem_seg`` and, when the sample has one,
    ``gt_sem_seg`` (void pixels ``ignore_index`` are left out; any other
    label must be the background). Without ``gt_sem_seg`` every pixel is
    background: image sets without label files need no labels (see
    :class:`~mmseg_ood.datasets.WholeImageOODDataset`). Counts are merged
    across ranks; the samples distributed sampling repeats are left out.

    Results (prefix ``background_iou/``): ``pooled`` (percent, the paper's
    number), ``image_mean`` (percent), ``images``, ``pixels``,
    ``images_without_valid``.

    Args:
        background_index: The model's background class (VOC and the
            synthetic objects: 0). A model without one has no background
            IoU: ``tools/ood_test.py`` says so instead of running this.
        ignore_index: Void label.
        collect_device / prefix: As in mmengine's ``BaseMetric``.

    Example:
        >>> test_evaluator = dict(type='BackgroundIoUMetric',
        ...                       background_index=0)

    References:
        "Implicit Background Estimation for Semantic Segmentation" (IBE),
        sec. 3 "Out-of-distribution Detection" and Table 2.
    """
    default_prefix = 'background_iou'

    def __init__(self, background_index: int,
                 ignore_index: int = IGNORE_INDEX,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.background_index = check_class_index('background_index',
                                             background_index)
        self.ignore_index = check_class_index('ignore_index', ignore_index)

    def process_sample(self, sample: dict) -> None:
        name = sample.get('img_path', 'image')
        logits = sample.get('seg_logits')
        if logits is not None:
            c = int(logits['data'].shape[0])
            if c > 1 and self.background_index >= c:
                raise InvalidValueError(
                    f'BackgroundIoUMetric: `background_index` '
                    f'{self.background_index} is not a class of the '
                    f'model, which predicts {c} classes')
        gt = sample.get('gt_sem_seg')
        counts = background_pixel_counts(
            sample['pred_sem_seg']['data'], self.background_index,
            None if gt is None else gt['data'], self.ignore_index, name)
        self.accumulator('background_iou',
                         BackgroundIoUAccumulator).update(*counts)

    def compute_accumulated(self, local) -> dict:
        merged = merge_across_ranks(local,
                                    lambda _: BackgroundIoUAccumulator())
        return merged.get('background_iou',
                          BackgroundIoUAccumulator()).compute()
