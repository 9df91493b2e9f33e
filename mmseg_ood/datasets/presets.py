"""OOD dataset presets: small config files naming an OOD test set.

A preset is a Python config (``configs/_base_/datasets/ood/<name>.py`` in
the package's configs, or any file) that defines::

    ood_dataset = dict(type=..., data_root=...)  # required
    component_preset = 'anomaly_track'           # SMIYC size filters
    smiyc_name = 'AnomalyTrack-all'              # dataset name of the export
    whole_image = True     # no known class anywhere (IBE Table 2): the
                           # background IoU, not pixel OOD metrics

The presets ship with the package (see
:func:`mmseg_ood.utils.config_root`), so
``load_dataset_preset('synthetic_ood')`` works from an installed wheel in
any directory.
"""
from __future__ import annotations

import os
import os.path as osp
from dataclasses import dataclass
from typing import List

from mmengine.config import Config

from ..evaluation.accumulators.components import SIZE_PRESETS
from ..utils.config import config_root

__all__ = ['DatasetPreset', 'available_dataset_presets',
           'dataset_preset_dir', 'load_dataset_preset']


@dataclass
class DatasetPreset:
    """An OOD test set and how the SMIYC tooling treats it.

    Args:
        name: The preset's name (its file name without ``.py``).
        dataset: mmseg dataset config (``type``, ``data_root``...).
        component_preset: Component size filters, a key of
            :data:`~mmseg_ood.evaluation.SIZE_PRESETS`.
        smiyc_name: Dataset name in the SMIYC export layout.
        path: The preset file.
        whole_image: A whole-image OOD set (every pixel background, e.g.
            textures or noise): evaluated with the background IoU
            (:class:`~mmseg_ood.evaluation.BackgroundIoUMetric`) instead
            of the pixel OOD metrics.
    """
    name: str
    dataset: dict
    component_preset: str = 'anomaly_track'
    smiyc_name: str = ''
    path: str = ''
    whole_image: bool = False


def dataset_preset_dir() -> str:
    """Directory of the shipped presets."""
    return osp.join(config_root(), '_base_', 'datasets', 'ood')


def available_dataset_presets() -> List[str]:
    """Names of the shipped presets, sorted."""
    d = dataset_preset_dir()
    if not osp.isdir(d):
        return []
    return sorted(f[:-3] for f in os.listdir(d) if f.endswith('.py'))


def load_dataset_preset(spec: str) -> DatasetPreset:
    """A preset by name (``synthetic_ood``) or file path (``*.py``).

    Raises:
        ValueError: an unknown name (listing the available ones), a file
            without ``ood_dataset``, an unknown ``component_preset``, or a
            ``whole_image`` that is not a bool.
    """
    path = spec if spec.endswith('.py') else osp.join(dataset_preset_dir(),
                                                      f'{spec}.py')
    if not osp.isfile(path):
        raise ValueError(
            f'unknown dataset {spec!r}: not a preset (available: '
            f'{", ".join(available_dataset_presets())}) nor a config file '
            'defining `ood_dataset`')
    cfg = Config.fromfile(path)
    if not isinstance(cfg.get('ood_dataset'), dict):
        raise ValueError(f'{path}: a dataset preset must define '
                         '`ood_dataset = dict(type=..., data_root=...)`')
    name = osp.splitext(osp.basename(path))[0]
    component_preset = cfg.get('component_preset', 'anomaly_track')
    if component_preset not in SIZE_PRESETS:
        raise ValueError(f'{path}: `component_preset` must be one of '
                         f'{sorted(SIZE_PRESETS)}, got {component_preset!r}')
    smiyc_name = cfg.get('smiyc_name', name)
    if not isinstance(smiyc_name, str) or not smiyc_name:
        raise ValueError(f'{path}: `smiyc_name` must be a non-empty str, got '
                         f'{smiyc_name!r}')
    whole_image = cfg.get('whole_image', False)
    if not isinstance(whole_image, bool):
        raise ValueError(f'{path}: `whole_image` must be True or False, got '
                         f'{whole_image!r}')
    return DatasetPreset(name=name, dataset=cfg.ood_dataset.to_dict(),
                         component_preset=component_preset,
                         smiyc_name=smiyc_name, path=path,
                         whole_image=whole_image)
