"""Outlier-proxy data for OOD training, and mixing it into an ID dataset.

An outlier proxy (the COCO subset of the entropy-maximization paper, or the
synthetic proxy of the embedded benchmark) is a set of images whose object
pixels are labelled 254 and every other pixel 255 (void)::

    {root}/
        images/NAME{img_suffix}
        annotations/NAME.png       254 = outlier object, 255 = void

:class:`OutlierMixDataset` mixes such a set into an ID training set at a
ratio (the paper: 297 COCO images per 2975 Cityscapes images, ~1:10).
"""
from __future__ import annotations

from typing import Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..errors import InvalidTypeError, InvalidValueError, MissingInputError
from .layout import check_data_dirs

_LAYOUT = """\
{root}/
    images/NAME.<img_suffix>
    annotations/NAME.png        254 = outlier object, 255 = void"""


@DATASETS.register_module()
class OutlierProxyDataset(BaseSegDataset):
    """Images with outlier objects labelled 254 and the rest 255.

    Make the COCO proxy with ``python tools/prepare_coco_ood.py``; the
    synthetic benchmark has one under ``<variant>/outlier_proxy``.

    Args:
        img_suffix: ``'.jpg'`` for the COCO proxy, ``'.png'`` (default) for
            the synthetic one.
        seg_map_suffix: Label file suffix (``'.png'``).
        data_prefix: Image and label folders under ``data_root``
            (``images`` and ``annotations``).
        **kwargs: As :class:`mmseg.datasets.BaseSegDataset`: ``data_root``
            is the proxy's root (layout in the module docstring);
            ``pipeline``...
    """
    METAINFO = dict(classes=('outlier', ), palette=[[255, 0, 0]])

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 data_prefix: dict = dict(
                     img_path='images', seg_map_path='annotations'),
                 **kwargs):
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            **kwargs)

    def load_data_list(self):
        check_data_dirs(
            self, _LAYOUT,
            'Make the COCO proxy with: python tools/prepare_coco_ood.py '
            '<coco_root> <out_dir>; the synthetic proxy is written by '
            'tools/make_synthetic.py under <variant>/outlier_proxy.')
        data_list = super().load_data_list()
        if not data_list:
            raise MissingInputError(
                f'OutlierProxyDataset: no *{self.img_suffix} image under '
                f"{self.data_prefix['img_path']!r}")
        return data_list


@DATASETS.register_module()
class OutlierMixDataset:
    """An ID dataset with outlier-proxy samples mixed in at ``ratio``.

    The mixed dataset has ``len(dataset) + round(ratio * len(dataset))``
    items: the ID samples in order, then the outlier slots. Each access to
    an outlier slot draws a proxy sample uniformly at random with numpy's
    global generator (which mmengine seeds per dataloader worker and which
    the ``randomness`` config seeds), so every pass over the dataset sees a
    fresh draw of proxy images - resampled each epoch as in the paper, but
    with replacement (the paper draws without replacement within an epoch).
    Both datasets keep their own pipelines; the ID dataset's ``metainfo``
    is the mixed dataset's.

    Args:
        dataset: The ID dataset or its config.
        outlier: The outlier-proxy dataset (e.g. :class:`OutlierProxyDataset`)
            or its config.
        ratio: Outlier slots per ID sample, > 0 (the paper: 297 / 2975).
        lazy_init: Build the datasets without loading their annotations.

    Example:
        >>> train_dataloader = dict(dataset=dict(
        ...     type='OutlierMixDataset', ratio=0.1,
        ...     dataset=dict(type='CityscapesDataset', ...),
        ...     outlier=dict(type='OutlierProxyDataset',
        ...                  data_root='data/coco_ood', img_suffix='.jpg',
        ...                  pipeline=train_pipeline)))

    References:
        "Entropy Maximization and Meta Classification for
        Out-of-Distribution Detection in Semantic Segmentation", sec. 5.
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 outlier: Union[dict, BaseDataset],
                 ratio: float = 0.1,
                 lazy_init: bool = False):
        if isinstance(ratio, bool) or not isinstance(
                ratio, (int, float)) or not ratio > 0:
            raise InvalidValueError(
                f'OutlierMixDataset: `ratio` must be a number '
                f'> 0, got {ratio!r}')
        self.ratio = float(ratio)
        self.dataset = self._build(dataset, 'dataset')
        self.outlier = self._build(outlier, 'outlier')
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @staticmethod
    def _build(cfg, field):
        if isinstance(cfg, dict):
            return DATASETS.build(cfg)
        if hasattr(cfg, '__getitem__') and hasattr(cfg, '__len__'):
            return cfg
        raise InvalidTypeError(
            f'OutlierMixDataset: `{field}` must be a dataset or '
            f'its config, got {type(cfg).__name__}')

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        for ds, field in ((self.dataset, 'dataset'), (self.outlier,
                                                      'outlier')):
            if hasattr(ds, 'full_init'):
                ds.full_init()
            if len(ds) == 0:
                raise InvalidValueError(
                    f'OutlierMixDataset: `{field}` is empty')
        self.num_id = len(self.dataset)
        self.num_outlier = max(1, int(round(self.ratio * self.num_id)))
        self._fully_initialized = True

    def __len__(self) -> int:
        self.full_init()
        return self.num_id + self.num_outlier

    def is_outlier_slot(self, idx: int) -> bool:
        """Whether item ``idx`` is drawn from the outlier proxy."""
        self.full_init()
        if not -len(self) <= idx < len(self):
            raise IndexError(f'index {idx} out of range for '
                             f'{len(self)} items')
        return idx % len(self) >= self.num_id

    def __getitem__(self, idx: int):
        if self.is_outlier_slot(idx):
            return self.outlier[int(np.random.randint(len(self.outlier)))]
        return self.dataset[idx % len(self)]
