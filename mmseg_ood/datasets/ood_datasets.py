"""OOD test datasets, each mapped into 0 = ID, 1 = OOD, 255 = void.

Every class lists the file layout it expects; a missing directory or an
empty listing raises ``FileNotFoundError`` with that layout. The raw label
values are mapped by :class:`~mmseg_ood.datasets.LoadOODAnnotations` through
the dataset's ``value_map`` (raw value -> 0 / 1 / 255). Label values follow
the Segment-Me-If-You-Can benchmark's conversions.

A ``value_map`` *lists* every raw value the dataset's label files
legitimately contain, its voids included (``255: 255``). A value it does not
list is still evaluated as void, but ``LoadOODAnnotations`` counts its
pixels (``ood_unlisted``) so that the evaluation reports it: a patch of 7 in
a 0 / 1 / 255 label map, or anomalies labelled 2 in a folder whose
``value_map`` expects 255, would otherwise vanish into void unnoticed.
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import Dict, Optional

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..errors import InvalidTypeError, InvalidValueError, MissingInputError
from ..labels import IGNORE_INDEX
from .layout import check_data_dirs

OOD_METAINFO = dict(
    classes=('in-distribution', 'out-of-distribution'),
    palette=[[0, 0, 0], [255, 255, 255]])


def _value_map_entries(value_map: Dict, void: int):
    """``(low, high, target)`` of each entry, validated."""
    if not isinstance(value_map, dict):
        raise InvalidTypeError('`value_map` must be a dict of raw value (or '
                               '(low, high) range) -> 0, 1 or '
                               f'{void}, got {type(value_map).__name__}')
    for raw, new in value_map.items():
        if new not in (0, 1, void):
            raise InvalidValueError(
                f'`value_map` targets must be 0, 1 or {void}, '
                f'got {raw!r} -> {new!r}')
        lo, hi = raw if isinstance(raw, (tuple, list)) else (raw, raw)
        if not all(isinstance(v, (int, np.integer)) and
                   not isinstance(v, bool) for v in (lo, hi)) or \
                not 0 <= lo <= hi <= 255:
            raise InvalidValueError(
                '`value_map` keys must be raw values in [0, 255] or '
                f'(low, high) ranges with 0 <= low <= high <= 255, got '
                f'{raw!r}')
        yield int(lo), int(hi), new


def value_lut(value_map: Dict, void: int = IGNORE_INDEX) -> np.ndarray:
    """256-entry uint8 lookup table: raw label -> 0 / 1 / ``void``.

    Keys are ints or ``(low, high)`` inclusive ranges; a value no key names
    maps to ``void`` too (see :func:`listed_values` for telling the two
    apart). A later entry overrides an earlier one where they overlap.

    Args:
        value_map: Raw value or ``(low, high)`` range -> 0, 1 or ``void``.
        void: The void label.

    Returns:
        np.ndarray: ``(256,)`` uint8, ``lut[raw]`` is the OOD label.

    Raises:
        TypeError: ``value_map`` is not a dict.
        ValueError: a target outside {0, 1, ``void``} or a key outside
            [0, 255].
    """
    lut = np.full(256, void, np.uint8)
    for lo, hi, new in _value_map_entries(value_map, void):
        lut[lo:hi + 1] = new
    return lut


def listed_values(value_map: Dict, void: int = IGNORE_INDEX) -> np.ndarray:
    """Which raw values ``value_map`` names (explicit voids included).

    Args:
        value_map: As in :func:`value_lut`.
        void: The void label.

    Returns:
        np.ndarray: ``(256,)`` bool, True where a key (value or range)
        covers the raw value.

    Example:
        >>> np.flatnonzero(listed_values({0: 0, (2, 4): 1, 255: 255}))
        array([  0,   2,   3,   4, 255])
    """
    listed = np.zeros(256, bool)
    for lo, hi, _ in _value_map_entries(value_map, void):
        listed[lo:hi + 1] = True
    return listed


class OODSegDataset(BaseSegDataset):
    """Base of the OOD datasets: images with OOD label maps.

    Args:
        value_map: Raw label value (or ``(low, high)`` inclusive range)
            -> 0 (ID), 1 (OOD) or 255 (void). It should name every value
            the label files contain, voids included: a value it does not
            name is evaluated as void too, but reported (see
            :class:`~mmseg_ood.datasets.LoadOODAnnotations`). Defaults to
            the class's ``VALUE_MAP``.
        require_labels: Drop images without a label file (e.g. the
            unlabelled test part of a benchmark) instead of failing.
        **kwargs: mmseg ``BaseSegDataset`` arguments (``data_root``,
            ``data_prefix``, ``img_suffix``, ``seg_map_suffix``,
            ``pipeline``...).
    """
    METAINFO = OOD_METAINFO
    #: The SMIYC convention (labels are already 0 / 1 / 255).
    VALUE_MAP: Dict = {0: 0, 1: 1, 255: 255}
    LAYOUT = ''
    HINT = ''
    #: Defaults of ``img_suffix``, ``seg_map_suffix`` and ``data_prefix``
    #: that encode each dataset's layout; config values override them.
    DEFAULTS: Dict = dict(img_suffix='.png', seg_map_suffix='.png')

    def __init__(self, value_map: Optional[Dict] = None,
                 require_labels: bool = True, **kwargs):
        self.value_map = dict(self.VALUE_MAP if value_map is None else
                              value_map)
        self.ood_lut = value_lut(self.value_map)
        self.ood_listed = listed_values(self.value_map)
        self.require_labels = require_labels
        super().__init__(**{**copy.deepcopy(self.DEFAULTS), **kwargs})

    def load_data_list(self):
        check_data_dirs(self, self.LAYOUT, self.HINT)
        infos = super().load_data_list()
        if self.require_labels:
            infos = [i for i in infos if osp.isfile(i['seg_map_path'])]
        if not infos:
            raise MissingInputError(
                f'{type(self).__name__}: no labelled images found under '
                f'{self.data_prefix.get("img_path")!r} (image suffix '
                f'{self.img_suffix!r}, label suffix {self.seg_map_suffix!r})'
                '. Expected layout:\n' +
                self.LAYOUT.format(root=self.data_root or '<data_root>'))
        for info in infos:
            info['ood_lut'] = self.ood_lut
            info['ood_listed'] = self.ood_listed
        return sorted(infos, key=lambda i: i['img_path'])


@DATASETS.register_module()
class SyntheticOODDataset(OODSegDataset):
    """The OOD split of the synthetic benchmark (SMIYC format).

    Args:
        value_map: Raw value -> 0 (ID) / 1 (OOD) / 255 (void); defaults
            to ``{0: 0, 1: 1, 255: 255}``.
        require_labels: Drop images without a label file instead of
            failing (as :class:`OODSegDataset`).
        **kwargs: mmseg ``BaseSegDataset`` arguments; ``img_suffix``,
            ``seg_map_suffix`` and ``data_prefix`` default to this
            dataset's layout (``DEFAULTS``).
    """
    LAYOUT = ('{root}/\n    images/NNNN.png\n'
              '    labels_masks/NNNN_labels_semantic.png')
    HINT = ('Generate it with: python tools/make_synthetic.py <out_dir>; '
            'data_root is <out_dir>/street/ood (or objects/ood).')

    DEFAULTS = dict(
        img_suffix='.png',
        seg_map_suffix='_labels_semantic.png',
        data_prefix=dict(img_path='images', seg_map_path='labels_masks'))


@DATASETS.register_module()
class RoadAnomaly21Dataset(OODSegDataset):
    """SMIYC AnomalyTrack (RoadAnomaly21); labelled part = validation.

    Labels are already 0 / 1 / 255.

    Args:
        value_map: Raw value -> 0 (ID) / 1 (OOD) / 255 (void); defaults
            to ``{0: 0, 1: 1, 255: 255}``.
        require_labels: Drop images without a label file instead of
            failing (as :class:`OODSegDataset`).
        **kwargs: mmseg ``BaseSegDataset`` arguments; ``img_suffix``,
            ``seg_map_suffix`` and ``data_prefix`` default to this
            dataset's layout (``DEFAULTS``).
    """
    LAYOUT = ('{root}/   (dataset_AnomalyTrack)\n    images/*.jpg\n'
              '    labels_masks/*_labels_semantic.png')

    DEFAULTS = dict(
        img_suffix='.jpg',
        seg_map_suffix='_labels_semantic.png',
        data_prefix=dict(img_path='images', seg_map_path='labels_masks'))


@DATASETS.register_module()
class RoadObstacle21Dataset(OODSegDataset):
    """SMIYC ObstacleTrack (RoadObstacle21); labelled part = validation.

    Labels are already 0 / 1 / 255 (void off the road).

    Args:
        value_map: Raw value -> 0 (ID) / 1 (OOD) / 255 (void); defaults
            to ``{0: 0, 1: 1, 255: 255}``.
        require_labels: Drop images without a label file instead of
            failing (as :class:`OODSegDataset`).
        **kwargs: mmseg ``BaseSegDataset`` arguments; ``img_suffix``,
            ``seg_map_suffix`` and ``data_prefix`` default to this
            dataset's layout (``DEFAULTS``).
    """
    LAYOUT = ('{root}/   (dataset_ObstacleTrack)\n    images/*.webp\n'
              '    labels_masks/*_labels_semantic.png')

    DEFAULTS = dict(
        img_suffix='.webp',
        seg_map_suffix='_labels_semantic.png',
        data_prefix=dict(img_path='images', seg_map_path='labels_masks'))


@DATASETS.register_module()
class LostAndFoundDataset(OODSegDataset):
    """LostAndFound with the SMIYC mapping of ``gtCoarse_labelIds``.

    Raw 1 (free road) -> 0, raw 2..200 (obstacles) -> 1, everything else
    (0 = off the road, 201..255) -> 255: the region of interest is the
    drivable road. Every raw value is listed, so no value is reported.

    Args:
        value_map: Raw value -> 0 (ID) / 1 (OOD) / 255 (void); defaults
            to the mapping above.
        require_labels: Drop images without a label file instead of
            failing (as :class:`OODSegDataset`).
        **kwargs: mmseg ``BaseSegDataset`` arguments; ``img_suffix``,
            ``seg_map_suffix`` and ``data_prefix`` default to this
            dataset's layout (``DEFAULTS``).
    """
    VALUE_MAP = {0: 255, 1: 0, (2, 200): 1, (201, 255): 255}
    LAYOUT = ('{root}/   (dataset_LostAndFound)\n'
              '    leftImg8bit/test/<scene>/<fid>_leftImg8bit.png\n'
              '    gtCoarse/test/<scene>/<fid>_gtCoarse_labelIds.png')

    DEFAULTS = dict(
        img_suffix='_leftImg8bit.png',
        seg_map_suffix='_gtCoarse_labelIds.png',
        data_prefix=dict(
            img_path='leftImg8bit/test', seg_map_path='gtCoarse/test'))


@DATASETS.register_module()
class FishyscapesLAFDataset(OODSegDataset):
    """Fishyscapes LostAndFound (validation, 100 frames).

    Labels (0 / 1 / 255) as released by Fishyscapes; the images are the
    LostAndFound frames, copied or linked next to them.

    Args:
        value_map: Raw value -> 0 (ID) / 1 (OOD) / 255 (void); defaults
            to ``{0: 0, 1: 1, 255: 255}``.
        require_labels: Drop images without a label file instead of
            failing (as :class:`OODSegDataset`).
        **kwargs: mmseg ``BaseSegDataset`` arguments; ``img_suffix``,
            ``seg_map_suffix`` and ``data_prefix`` default to this
            dataset's layout (``DEFAULTS``).
    """
    LAYOUT = ('{root}/   (fishyscapes_lost_and_found)\n'
              '    images/<fid>_leftImg8bit.png\n'
              '    labels/<fid>_fishy-labels.png')

    DEFAULTS = dict(
        img_suffix='_leftImg8bit.png',
        seg_map_suffix='_fishy-labels.png',
        data_prefix=dict(img_path='images', seg_map_path='labels'))


@DATASETS.register_module()
class FishyscapesStaticDataset(OODSegDataset):
    """Fishyscapes Static (validation): Cityscapes images with pasted
    objects; labels 0 / 1 / 255.

    Args:
        value_map: Raw value -> 0 (ID) / 1 (OOD) / 255 (void); defaults
            to ``{0: 0, 1: 1, 255: 255}``.
        require_labels: Drop images without a label file instead of
            failing (as :class:`OODSegDataset`).
        **kwargs: mmseg ``BaseSegDataset`` arguments; ``img_suffix``,
            ``seg_map_suffix`` and ``data_prefix`` default to this
            dataset's layout (``DEFAULTS``).
    """
    LAYOUT = ('{root}/   (fishyscapes_static)\n    <id>_rgb.png\n'
              '    <id>_labels.png')

    DEFAULTS = dict(
        img_suffix='_rgb.png',
        seg_map_suffix='_labels.png',
        data_prefix=dict(img_path='', seg_map_path=''))


@DATASETS.register_module()
class RoadAnomalyDataset(OODSegDataset):
    """The original RoadAnomaly (Lis et al. 2019).

    ``labels_semantic.png``: raw 0 -> 0 (ID), raw 2 (anomaly) -> 1, other
    values -> 255. (SMIYC has no loader for it; this is the mapping its
    companion code uses for value 2, with other values kept as void.) The
    released label maps hold only 0 and 2, so the map lists no void: any
    other value is evaluated as void and reported.

    Args:
        value_map: Raw value -> 0 (ID) / 1 (OOD) / 255 (void); defaults
            to ``{0: 0, 2: 1}``.
        require_labels: Drop images without a label file instead of
            failing (as :class:`OODSegDataset`).
        **kwargs: mmseg ``BaseSegDataset`` arguments; ``img_suffix``,
            ``seg_map_suffix`` and ``data_prefix`` default to this
            dataset's layout (``DEFAULTS``).
    """
    VALUE_MAP = {0: 0, 2: 1}
    LAYOUT = ('{root}/   (RoadAnomaly_jpg)\n    frames/<name>.jpg\n'
              '    frames/<name>.labels/labels_semantic.png')

    DEFAULTS = dict(
        img_suffix='.jpg',
        seg_map_suffix='.labels/labels_semantic.png',
        data_prefix=dict(img_path='frames', seg_map_path='frames'))


@DATASETS.register_module()
class OODFolderDataset(OODSegDataset):
    """Any folder of images and masks, with a configurable value mapping.

    The ``value_map`` (default: 0 / 1 / 255 as in SMIYC) should list every
    raw value of the masks, voids included; the evaluation reports pixels
    of values it does not list (evaluated as void).

    Args:
        value_map: Raw value (or ``(low, high)`` range) -> 0 (ID) / 1
            (OOD) / 255 (void); defaults to ``{0: 0, 1: 1, 255: 255}``.
        require_labels: Drop images without a label file instead of
            failing (as :class:`OODSegDataset`).
        **kwargs: mmseg ``BaseSegDataset`` arguments (``data_root``,
            ``data_prefix``, ``img_suffix``, ``seg_map_suffix``,
            ``pipeline``...); the suffixes default to ``'.png'``.

    Example:
        >>> dict(type='OODFolderDataset', data_root='my_data',
        ...      data_prefix=dict(img_path='img', seg_map_path='mask'),
        ...      img_suffix='.jpg', seg_map_suffix='.png',
        ...      value_map={0: 0, 255: 1, 128: 255})
    """
    LAYOUT = ('{root}/\n    <img_path>/<name><img_suffix>\n'
              '    <seg_map_path>/<name><seg_map_suffix>')
