"""mmseg's ``IoUMetric`` that also returns each class's IoU.

mmseg prints the per-class table to the log but returns only the means, so
mmengine's ``scalars.json`` (what training curves are drawn from) has no
per-class numbers. :class:`PerClassIoUMetric` returns them as
``IoU.<class>`` (percent, as mmseg's table), next to mmseg's own keys: a
training run validated with it records when each class is learnt
(:mod:`~mmseg_ood.reports.training_log`).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX
from ...utils.arguments import strict_arguments
from .accumulating_metric import plain_numbers

__all__ = ['PerClassIoUMetric']


@METRICS.register_module()
@strict_arguments
class PerClassIoUMetric(IoUMetric):
    """``IoUMetric`` whose results also hold ``IoU.<class>`` for each class
    (``nan`` for a class absent from both prediction and labels, as mmseg's
    table shows it).

    Args:
        ignore_index: Void label.
        iou_metrics: As mmseg's; must include ``'mIoU'``.
        nan_to_num: As in mmseg's ``IoUMetric``.
        beta: As in mmseg's ``IoUMetric``.
        collect_device / output_dir / format_only / prefix: As in mmseg's
            ``IoUMetric``.

    Example:
        >>> val_evaluator = dict(type='PerClassIoUMetric',
        ...                      iou_metrics=['mIoU'])

    References:
        mmseg's ``IoUMetric`` (``mmseg/evaluation/metrics/iou_metric.py``):
        the same areas and means.
    """

    def __init__(self,
                 ignore_index: int = IGNORE_INDEX,
                 iou_metrics: List[str] = ['mIoU'],
                 nan_to_num: Optional[int] = None,
                 beta: int = 1,
                 collect_device: str = 'cpu',
                 output_dir: Optional[str] = None,
                 format_only: bool = False,
                 prefix: Optional[str] = None):
        super().__init__(ignore_index=ignore_index, iou_metrics=iou_metrics,
                         nan_to_num=nan_to_num, beta=beta,
                         collect_device=collect_device,
                         output_dir=output_dir, format_only=format_only,
                         prefix=prefix)
        if 'mIoU' not in self.metrics:
            raise InvalidValueError(
                'PerClassIoUMetric reports IoU: `iou_metrics` '
                f"must include 'mIoU', got {self.metrics}")

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.format_only:
            return plain_numbers(metrics)
        intersect, union = (sum(part) for part in tuple(zip(*results))[:2])
        iou = (intersect / union).numpy() if hasattr(intersect, 'numpy') \
            else np.asarray(intersect) / np.asarray(union)
        for name, value in zip(self.dataset_meta['classes'], iou):
            metrics[f'IoU.{name}'] = round(float(value) * 100, 2)
        return plain_numbers(metrics)
