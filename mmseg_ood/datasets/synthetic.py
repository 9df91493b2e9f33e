"""mmseg datasets for the ID splits of the synthetic benchmark.

Generate the data with ``python tools/make_synthetic.py data/synthetic`` or
:func:`mmseg_ood.synthetic.make_synthetic_benchmark`.
"""
from __future__ import annotations

import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..synthetic import (OBJECTS_CLASSES, OBJECTS_PALETTE, STREET_CLASSES,
                         STREET_PALETTE)

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
        for field in ('img_path', 'seg_map_path'):
            path = self.data_prefix.get(field)
            if path and not osp.isdir(path):
                raise FileNotFoundError(
                    f'{type(self).__name__}: data_prefix.{field} directory '
                    f'{path!r} does not exist (data_root={self.data_root!r}).'
                    ' Expected layout:\n' +
                    _LAYOUT.format(root=self.data_root or '<data_root>') +
                    '\nGenerate it with: python tools/make_synthetic.py '
                    f'<out_dir> --variants {self.variant} and set data_root '
                    f'to <out_dir>/{self.variant}.')
        return super().load_data_list()


@DATASETS.register_module()
class SyntheticStreetDataset(_SyntheticSegDataset):
    """Cityscapes-like synthetic street scenes (6 classes, no background).

    Classes: road, sidewalk, building, vegetation, sky, vehicle.
    """
    METAINFO = dict(classes=STREET_CLASSES, palette=list(STREET_PALETTE))
    variant = 'street'


@DATASETS.register_module()
class SyntheticObjectsDataset(_SyntheticSegDataset):
    """VOC-like synthetic scenes: background (index 0) and 5 object classes.

    Classes: background, disk, box, triangle, ring, cross.
    """
    METAINFO = dict(classes=OBJECTS_CLASSES, palette=list(OBJECTS_PALETTE))
    variant = 'objects'
