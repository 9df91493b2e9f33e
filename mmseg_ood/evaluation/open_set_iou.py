"""In-distribution mIoU with an extra OOD class at score thresholds."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from mmseg.registry import METRICS
from ..labels import IGNORE_INDEX
from ..utils.arguments import strict_arguments
from .accumulating_metric import AccumulatingMetric
from .accumulator import Accumulator, merge_across_ranks
from .inputs import to_numpy


class OpenSetIoUAccumulator(Accumulator):
    """Per-class intersection / prediction / label areas of ID pixels, with
    pixels scoring ``>= t`` predicted as an extra OOD class, for each
    threshold ``t``.

    Memory: ``3 * T * C`` int64 counts.

    Args:
        num_classes: ID classes ``C``.
        thresholds: ``T`` score thresholds; ``None`` = no OOD class.
        ignore_index: Label excluded.
    """

    def __init__(self, num_classes: int,
                 thresholds: Sequence[Optional[float]],
                 ignore_index: int = IGNORE_INDEX):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError('`num_classes` must be an int >= 1, got '
                             f'{num_classes!r}')
        self.num_classes = num_classes
        self.thresholds = tuple(thresholds)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.areas = np.zeros((3, len(self.thresholds), self.num_classes),
                              np.int64)

    def update(self, pred, label, score) -> 'OpenSetIoUAccumulator':
        """Add one image: prediction, labels and OOD scores, ``(H, W)``
        each."""
        c = self.num_classes
        pred, label, score = (to_numpy(x) for x in (pred, label, score))
        valid = label != self.ignore_index
        p, y, s = pred[valid], label[valid], score[valid]
        if y.size and (y.min() < 0 or y.max() >= c):
            raise ValueError(f'labels must be in [0, {c}) or '
                             f'{self.ignore_index}, got {int(y.min())}..'
                             f'{int(y.max())}')
        area_label = np.bincount(y, minlength=c)[:c]
        for i, t in enumerate(self.thresholds):
            q = p if t is None else np.where(s >= t, c, p)
            hit = q[q == y]
            self.areas[0, i] += np.bincount(hit, minlength=c)[:c]
            self.areas[1, i] += np.bincount(q, minlength=c + 1)[:c]
            self.areas[2, i] += area_label
        return self

    def state_dict(self) -> dict:
        return dict(areas=self.areas.copy())

    def load_state_dict(self, state: dict) -> 'OpenSetIoUAccumulator':
        if state['areas'].shape != self.areas.shape:
            raise ValueError(f"areas {state['areas'].shape} cannot be merged "
                             f'into {self.areas.shape}')
        self.areas += state['areas']
        return self

    def compute(self) -> dict:
        """``{threshold: mIoU in percent}`` (NaN-free classes averaged)."""
        inter, pred, label = self.areas
        union = pred + label - inter
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = inter / union
        miou = np.nanmean(iou, axis=1) * 100 if iou.size else []
        return dict(zip(self.thresholds, miou))


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
            :func:`~mmseg_ood.evaluation.figures.plot_open_set_miou`);
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
            raise ValueError(f'`scorer` must be a scorer name, got {scorer!r}')
        if not thresholds:
            raise ValueError('`thresholds` must not be empty')
        for t in thresholds:
            if t is not None and not np.isfinite(t):
                raise ValueError(f'`thresholds` must be finite or None, got '
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
            raise KeyError('OpenSetIoUMetric: no '
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
