"""Background IoU on whole-image OOD sets (IBE Table 2).

IBE (ibe-implicit-background-estimation.txt, sec. 3, Table 2) evaluates
OOD detection on images that hold no known class anywhere (the Describable
Textures Dataset and Gaussian white noise): a model with a background class
should call all of such an image background, and the paper reports the
mIoU of the background class. Every pixel's ground truth is background
there, so the background class's IoU is::

    IoU_BG = |pred = BG  and  valid| / |valid|

(the union is every valid pixel, the intersection the pixels predicted
background). :class:`BackgroundIoUMetric` pools it over the dataset
(``pooled``, the paper's number) and also averages it over images
(``image_mean``).
"""
from __future__ import annotations

import warnings
from typing import Dict, Tuple

import numpy as np

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX
from ..functional.inputs import to_numpy
from ..functional.roc_pr import UndefinedMetricWarning
from .base import Accumulator

__all__ = ['background_pixel_counts', 'BackgroundIoUAccumulator']


def check_class_index(name: str, value) -> int:
    """``value`` as an int class index >= 0, or a ValueError naming
    ``name``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) \
            or value < 0:
        raise InvalidValueError(f'`{name}` must be an int >= 0, got {value!r}')
    return int(value)


def background_pixel_counts(pred, background_index: int, labels=None,
                            ignore_index: int = IGNORE_INDEX,
                            name: str = 'image') -> Tuple[int, int]:
    """Pixels predicted background and valid pixels of one image.

    Args:
        pred: Predicted class indices, ``(H, W)`` (or ``(1, H, W)``).
        background_index: The background class.
        labels: Ground truth of the same shape, or ``None``: every pixel is
            background and valid (a whole-image OOD image without a label
            file). Pixels labelled ``ignore_index`` are not valid; every
            other pixel must be ``background_index``.
        ignore_index: Label of void pixels.
        name: The image, for messages.

    Returns:
        ``(background, valid)``: the IoU's intersection and union.

    Raises:
        ValueError: shapes differ, or a valid label is not the background
            (the set is not a whole-image OOD set).
    """
    p = to_numpy(pred)
    if labels is None:
        return int(np.count_nonzero(p == background_index)), int(p.size)
    y = to_numpy(labels)
    if p.squeeze().shape != y.squeeze().shape:
        raise InvalidValueError(f'{name}: prediction {p.shape} and labels '
                                f'{y.shape} differ in shape')
    p, y = p.reshape(-1), y.reshape(-1)
    valid = y != ignore_index
    other = valid & (y != background_index)
    if other.any():
        raise InvalidValueError(
            f'{name}: {int(other.sum())} valid label pixels are not the '
            f'background {background_index} (values '
            f'{sorted(np.unique(y[other]).tolist())[:10]}); background IoU '
            'is defined on whole-image OOD sets, whose every pixel is '
            f'background or {ignore_index}')
    return int(np.count_nonzero(valid & (p == background_index))), \
        int(np.count_nonzero(valid))


class BackgroundIoUAccumulator(Accumulator):
    """Streaming background IoU: pooled counts and a per-image sum.

    Memory: four numbers. Exact (integer pixel counts; the per-image sum in
    float64).
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.background = 0
        self.valid = 0
        self.image_iou_sum = 0.0
        self.images = 0
        self.images_without_valid = 0

    def update(self, background: int, valid: int
               ) -> 'BackgroundIoUAccumulator':
        """Add one image's counts (:func:`background_pixel_counts`)."""
        if not 0 <= background <= valid:
            raise InvalidValueError(
                'need 0 <= background <= valid pixels, got '
                f'{background} and {valid}')
        self.background += int(background)
        self.valid += int(valid)
        if valid:
            self.image_iou_sum += background / valid
            self.images += 1
        else:
            self.images_without_valid += 1
        return self

    def state_dict(self) -> dict:
        return dict(background=self.background, valid=self.valid,
                    image_iou_sum=self.image_iou_sum, images=self.images,
                    images_without_valid=self.images_without_valid)

    def load_state_dict(self, state: dict) -> 'BackgroundIoUAccumulator':
        """Add another accumulator's state (e.g. another rank's)."""
        for key, value in state.items():
            setattr(self, key, getattr(self, key) + value)
        return self

    def compute(self) -> Dict[str, float]:
        """``pooled`` (percent: predicted-background over valid pixels of
        the whole set), ``image_mean`` (percent: the mean of each image's
        IoU, images without a valid pixel left out), ``images``,
        ``pixels`` (valid), ``images_without_valid``. Undefined values
        (no valid pixel) are NaN, with an
        :class:`~mmseg_ood.evaluation.UndefinedMetricWarning`."""
        if not self.valid:
            warnings.warn('background IoU: no valid pixel; it is undefined '
                          '(NaN)', UndefinedMetricWarning)
        nan = float('nan')
        return dict(
            pooled=100 * self.background / self.valid if self.valid else nan,
            image_mean=100 * self.image_iou_sum / self.images
            if self.images else nan,
            images=self.images, pixels=self.valid,
            images_without_valid=self.images_without_valid)


