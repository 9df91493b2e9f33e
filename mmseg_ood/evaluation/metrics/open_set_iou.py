"""The registered open-set mIoU metric."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mmengine.logging import print_log
from mmseg.registry import METRICS

from ...errors import InvalidValueError, MissingFieldError
from ...labels import IGNORE_INDEX
from ...utils.arguments import strict_arguments
from ..accumulators.base import merge_across_ranks
from ..accumulators.open_set_iou import OpenSetIoUAccumulator
from ..functional.inputs import to_numpy
from .accumulating_metric import AccumulatingMetric


@METRICS.register_module()
@strict_arguments
class OpenSetIoUMetric(AccumulatingMetric):
    """ID mIoU when pixels scoring >= t are predicted as an extra OOD class.

    Entropy-maximization paper, sec. 6.3 / Fig. 5: on ID validation data,
    besides the usual argmax prediction, a pixel is predicted "OOD" when its
    OOD score is at least ``t``; the mIoU is averaged over the ID classes
    only, so every ID pixel flagged OOD counts as a miss. ``t = None`` (the
    first entry by default) is the plain mIoU; comparing it with the other
    entries shows what a detection threshold costs the original task.

    Streaming: an :class:`OpenSetIoUAccumulator`, merged across ranks.

    Args:
        scorer: Name in ``data_sample['ood_scores']`` (e.g. ``'entropy'``,
            which lies in [0, 1] like the paper's normalized entropy).
        thresholds: Score thresholds ``t``; ``None`` means no OOD class.
        ignore_index: Label excluded from the ID classes.
        collect_device / prefix: As in mmengine's ``BaseMetric``.

    Returns (from ``evaluate``):
        ``mIoU@t=<t>`` (percent, as mmseg's ``IoUMetric``) for each ``t``,
        and ``mIoU`` for ``t = None``.

    Attributes:
        last_curve: After ``evaluate``, ``{t: mIoU in percent}``, not
            rounded (``tools/ood_test.py --open-set-iou`` plots it with
            :func:`~mmseg_ood.reports.figures.plot_open_set_miou`);
            ``None`` before.

    References:
        Chan, Rottmann & Gottschalk, "Entropy Maximization and Meta
        Classification for Out-of-Distribution Detection in Semantic
        Segmentation", ICCV 2021, sec. 6.3 and Fig. 5.
    """
    default_prefix = 'open_set'

    def __init__(self, scorer: str = 'entropy',
                 thresholds: Sequence[Optional[float]] = (None, 0.2, 0.3, 0.5,
                                                          0.7, 0.9),
                 ignore_index: int = IGNORE_INDEX, collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not isinstance(scorer, str) or not scorer:
            raise InvalidValueError(
                f'`scorer` must be a scorer name, got {scorer!r}')
        if not thresholds:
            raise InvalidValueError('`thresholds` must not be empty')
        for t in thresholds:
            if t is not None and not np.isfinite(t):
                raise InvalidValueError(
                    f'`thresholds` must be finite or None, got '
                    f'{t}')
        self.scorer = scorer
        self.thresholds = list(thresholds)
        self.ignore_index = ignore_index
        self.last_curve: Optional[dict] = None

    def _new_accumulator(self, name: str = '') -> OpenSetIoUAccumulator:
        return OpenSetIoUAccumulator(len(self.dataset_meta['classes']),
                                     self.thresholds, self.ignore_index)

    def process_sample(self, sample: dict) -> None:
        if self.scorer not in sample.get('ood_scores', {}):
            raise MissingFieldError(
                'OpenSetIoUMetric: no '
                f'ood_scores[{self.scorer!r}]; attach it with '
                'OODScoringHook')
        self.accumulator('areas', self._new_accumulator).update(
            to_numpy(sample['pred_sem_seg']['data']).squeeze(0),
            to_numpy(sample['gt_sem_seg']['data']).squeeze(0),
            sample['ood_scores'][self.scorer])

    def compute_accumulated(self, local) -> dict:
        merged = merge_across_ranks(local, self._new_accumulator)
        if not merged:
            return {}
        out = {}
        self.last_curve = merged['areas'].compute()
        for t, v in self.last_curve.items():
            key = 'mIoU' if t is None else f'mIoU@t={t:g}'
            out[key] = float(np.round(v, 2))
        print_log(f'open-set mIoU ({self.scorer}): {out}', logger='current')
        return out
