"""Whole-image OOD sets: images with no known class anywhere.

IBE (ibe-implicit-background-estimation.txt, Table 2) tests a background
model on textures (DTD) and Gaussian white noise: every pixel of such an
image is background, so the images need no label files. The synthetic
benchmark writes them to ``<variant>/image_ood/{gwn,textures}/``.
"""
from __future__ import annotations

from typing import Sequence

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..errors import InvalidValueError, MissingInputError
from .layout import check_data_dirs
from .transforms import without_annotations

__all__ = ['WholeImageOODDataset']


@DATASETS.register_module()
class WholeImageOODDataset(BaseSegDataset):
    """Every image under ``data_prefix.img_path`` (sub-directories
    included, sorted), no label files: the whole image is background.

    The pipeline's ``LoadAnnotations`` steps are left out (with
    :func:`~mmseg_ood.datasets.without_annotations`), so a model config's
    test pipeline serves as it is; samples carry no ``gt_sem_seg``, and
    :class:`~mmseg_ood.evaluation.BackgroundIoUMetric` counts every pixel
    as background.

    Args:
        pipeline: Test pipeline (its label loading is dropped).
        img_suffix: Image file suffix.
        **kwargs: mmseg ``BaseSegDataset`` arguments (``data_root``,
            ``data_prefix=dict(img_path=...)``, ...); a ``seg_map_path`` is
            refused.

    Example:
        >>> dict(type='WholeImageOODDataset', data_root='data/dtd',
        ...      data_prefix=dict(img_path='images'), img_suffix='.jpg')
    """
    METAINFO = dict(classes=('background', ), palette=[[0, 0, 0]])
    LAYOUT = '{root}/\n    <img_path>/[<sub-directories>/]<name><img_suffix>'

    def __init__(self, pipeline: Sequence = (), img_suffix: str = '.png',
                 **kwargs):
        prefix = kwargs.get('data_prefix') or {}
        if prefix.get('seg_map_path'):
            raise InvalidValueError(
                'WholeImageOODDataset has no label files: every pixel is '
                'background; drop `data_prefix.seg_map_path` (got '
                f"{prefix['seg_map_path']!r})")
        kwargs['data_prefix'] = dict(img_path=prefix.get('img_path', ''))
        super().__init__(pipeline=without_annotations(pipeline),
                         img_suffix=img_suffix, **kwargs)

    def load_data_list(self):
        check_data_dirs(self, self.LAYOUT)
        infos = super().load_data_list()
        if not infos:
            raise MissingInputError(
                f'WholeImageOODDataset: no images ({self.img_suffix!r}) '
                f'under {self.data_prefix.get("img_path")!r}')
        return infos
