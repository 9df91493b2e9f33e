"""Background IoU on whole-image OOD sets (IBE Table 2).

IBE (ibe-implicit-background-estimation.txt, sec. 3, Table 2) evaluates
OOD detection on images that hold no known class anywhere (the Describable
Textures Dataset and Gaussian white noise): a model with a background class
should call all of such an image background, and the paper reports the
mIoU of the background class. Every pixel's ground truth is background
there, so the background class's IoU is

    IoU_BG = |pred = BG  and  valid| / |valid|

(the union is every valid pixel, the intersection the pixels predicted
background). :class:`BackgroundIoUMetric` pools it over the dataset
(``pooled``, the paper's number) and also averages it over images
(``image_mean``).
"""
from __future__ import annotations

import warnings
from typing import Dict, Optional, Tuple

import numpy as np

from mmseg.registry import METRICS
from ..labels import IGNORE_INDEX
from ..utils.arguments import strict_arguments
from .accumulating_metric import AccumulatingMetric
from .accumulator import Accumulator, merge_across_ranks
from .curves import UndefinedMetricWarning
from .inputs import to_numpy

__all__ = ['background_pixel_counts', 'BackgroundIoUAccumulator',
           'BackgroundIoUMetric']


def _check_index(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) \
            or value < 0:
        raise ValueError(f'`{name}` must be an int >= 0, got {value!r}')
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
        raise ValueError(f'{name}: prediction {p.shape} and labels '
                         f'{y.shape} differ in shape')
    p, y = p.reshape(-1), y.reshape(-1)
    valid = y != ignore_index
    other = valid & (y != background_index)
    if other.any():
        raise ValueError(
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
            raise ValueError('need 0 <= background <= valid pixels, got '
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
        self.background_index = _check_index('background_index',
                                             background_index)
        self.ignore_index = _check_index('ignore_index', ignore_index)

    def process_sample(self, sample: dict) -> None:
        name = sample.get('img_path', 'image')
        logits = sample.get('seg_logits')
        if logits is not None:
            c = int(logits['data'].shape[0])
            if c > 1 and self.background_index >= c:
                raise ValueError(
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
