"""mmseg datasets for the ID splits of the synthetic benchmark.

Generate the data with ``python tools/make_synthetic.py data/synthetic`` or
:func:`mmseg_ood.synthetic.make_synthetic_benchmark`.
"""
from __future__ import annotations

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from ..synthetic import (OBJECTS_CLASSES, OBJECTS_PALETTE, STREET_CLASSES,
                         STREET_PALETTE)
from .layout import check_data_dirs

_LAYOUT = """\
{root}/
    images/{{train,val}}/NNNN.png
    annotations/{{train,val}}/NNNN.png"""


class _SyntheticSegDataset(BaseSegDataset):
    """Checks the layout before listing files, so that a missing directory
    gives a message with the expected layout and the command that makes it."""

    variant = ''

    def __init__(self, img_suffix='.png', seg_map_suffix='.png', **kwargs):
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    def load_data_list(self):
        check_data_dirs(
            self, _LAYOUT,
            'Generate it with: python tools/make_synthetic.py <out_dir> '
            f'--variants {self.variant} and set data_root to '
            f'<out_dir>/{self.variant}.')
        return super().load_data_list()


@DATASETS.register_module()
class SyntheticStreetDataset(_SyntheticSegDataset):
    """Cityscapes-like synthetic street scenes (6 classes, no background).

    Classes: road, sidewalk, building, vegetation, sky, vehicle.

    Args:
        img_suffix: Image file suffix.
        seg_map_suffix: Label file suffix.
        **kwargs: mmseg ``BaseSegDataset`` arguments (``data_root``,
            ``data_prefix``, ``pipeline``...).
    """
    METAINFO = dict(classes=STREET_CLASSES, palette=list(STREET_PALETTE))
    variant = 'street'


@DATASETS.register_module()
class SyntheticObjectsDataset(_SyntheticSegDataset):
    """VOC-like synthetic scenes: background (index 0) and 5 object classes.

    Classes: background, disk, box, triangle, ring, cross.

    Args:
        img_suffix: Image file suffix.
        seg_map_suffix: Label file suffix.
        **kwargs: mmseg ``BaseSegDataset`` arguments (``data_root``,
            ``data_prefix``, ``pipeline``...).
    """
    METAINFO = dict(classes=OBJECTS_CLASSES, palette=list(OBJECTS_PALETTE))
    variant = 'objects'
