"""In-distribution mIoU with an extra OOD class at score thresholds."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mmengine.dist import all_gather_object
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmseg.registry import METRICS
from .inputs import to_numpy


@METRICS.register_module()
class OpenSetIoUMetric(BaseMetric):
    """ID mIoU when pixels scoring >= t are predicted as an extra OOD class.

    Entropy-maximization paper, sec. 6.3 / Fig. 5: on ID validation data,
    besides the usual argmax prediction, a pixel is predicted "OOD" when its
    OOD score is at least ``t``; the mIoU is averaged over the ID classes
    only, so every ID pixel flagged OOD counts as a miss. ``t = None`` (the
    first entry by default) is the plain mIoU; comparing it with the other
    entries shows what a detection threshold costs the original task.

    Streaming: intersection / prediction / label areas per class and
    threshold, ``3 * T * C`` int64 counts; merged across ranks.

    Args:
        scorer: Name in ``data_sample['ood_scores']`` (e.g. ``'entropy'``,
            which lies in [0, 1] like the paper's normalized entropy).
        thresholds: Score thresholds ``t``; ``None`` means no OOD class.
        ignore_index: Label excluded from the ID classes.
        collect_device / prefix: As in mmengine's ``BaseMetric``.

    Returns (from ``evaluate``):
        ``mIoU@t=<t>`` (percent, as mmseg's ``IoUMetric``) for each ``t``,
        and ``mIoU`` for ``t = None``.

    References:
        Chan, Rottmann & Gottschalk, "Entropy Maximization and Meta
        Classification for Out-of-Distribution Detection in Semantic
        Segmentation", ICCV 2021, sec. 6.3 and Fig. 5.
    """
    default_prefix = 'open_set'

    def __init__(self, scorer: str = 'entropy',
                 thresholds: Sequence[Optional[float]] = (None, 0.2, 0.3, 0.5,
                                                          0.7, 0.9),
                 ignore_index: int = 255, collect_device: str = 'cpu',
                 prefix: Optional[str] = None, **kwargs):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not thresholds:
            raise ValueError('`thresholds` must not be empty')
        for t in thresholds:
            if t is not None and not np.isfinite(t):
                raise ValueError(f'`thresholds` must be finite or None, got '
                                 f'{t}')
        self.scorer = scorer
        self.thresholds = list(thresholds)
        self.ignore_index = ignore_index
        self._areas = None

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            pred = to_numpy(sample['pred_sem_seg']['data']).squeeze(0)
            label = to_numpy(sample['gt_sem_seg']['data']).squeeze(0)
            if self.scorer not in sample.get('ood_scores', {}):
                raise KeyError(f'OpenSetIoUMetric: no ood_scores[{self.scorer!r}]'
                               '; attach it with OODScoringHook')
            score = to_numpy(sample['ood_scores'][self.scorer])
            c = len(self.dataset_meta['classes'])
            if self._areas is None:
                self._areas = np.zeros((3, len(self.thresholds), c), np.int64)
            valid = label != self.ignore_index
            p, y, s = pred[valid], label[valid], score[valid]
            area_label = np.bincount(y, minlength=c)[:c]
            for i, t in enumerate(self.thresholds):
                q = p if t is None else np.where(s >= t, c, p)
                hit = q[q == y]
                self._areas[0, i] += np.bincount(hit, minlength=c)[:c]
                self._areas[1, i] += np.bincount(q, minlength=c + 1)[:c]
                self._areas[2, i] += area_label

    def evaluate(self, size: int) -> dict:
        parts = [a for a in all_gather_object(self._areas) if a is not None]
        self._areas = None
        if not parts:
            return {}
        inter, pred, label = sum(parts)
        union = pred + label - inter
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = inter / union
        miou = np.nanmean(iou, axis=1) * 100
        out = {}
        pre = f'{self.prefix}/' if self.prefix else ''
        for t, v in zip(self.thresholds, miou):
            key = 'mIoU' if t is None else f'mIoU@t={t:g}'
            out[pre + key] = float(np.round(v, 2))
        print_log(f'open-set mIoU ({self.scorer}): {out}', logger='current')
        return out

    def compute_metrics(self, results):  # pragma: no cover
        raise NotImplementedError('OpenSetIoUMetric computes in evaluate()')
