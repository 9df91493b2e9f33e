"""In-distribution mIoU with an extra OOD class at score thresholds."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX
from ..functional.inputs import to_numpy
from .base import Accumulator


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
            raise InvalidValueError('`num_classes` must be an int >= 1, got '
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
            raise InvalidValueError(
                f'labels must be in [0, {c}) or '
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
            raise InvalidValueError(
                f"areas {state['areas'].shape} cannot be merged "
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


