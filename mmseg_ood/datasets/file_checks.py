"""Check a dataset's files before a run starts."""
from __future__ import annotations

import copy
import os.path as osp

from mmseg.registry import DATASETS

from mmseg_ood.errors import InvalidValueError, MissingInputError

from .presets import missing_root_message

__all__ = ['check_dataset_files']


def check_dataset_files(dataset: dict, what: str) -> int:
    """Build ``dataset`` (without its pipeline) and check its image files.

    Lists the dataset as mmseg does, then checks that each sample's
    ``img_path`` is a non-empty file: a wrong data root, an empty image
    directory or a truncated (0-byte) image fails here, naming ``what`` and
    the path, rather than in OpenCV or a worker process in the middle of a
    run.

    Args:
        dataset: mmseg dataset config.
        what: How messages name the dataset (e.g. ``"dataset 'road_anomaly'
            (configs/.../road_anomaly.py)"``).

    Returns:
        int: The number of samples.

    Raises:
        MissingInputError: the data root or image directory is missing
            (naming the environment variable a preset's root comes from,
            :func:`~mmseg_ood.datasets.presets.missing_root_message`), the
            dataset has no samples, or an image file is missing.
        ValueError: an image file is empty.
    """
    cfg = copy.deepcopy(dict(dataset))
    cfg['pipeline'] = []
    cfg['lazy_init'] = False
    root = cfg.get('data_root')
    if root and not osp.isdir(root):
        # a preset's root from an unset (or wrong) environment variable:
        # name the variable
        raise MissingInputError(
            missing_root_message(root)
            or f'{what}: data_root {root!r} is not a directory')
    try:
        ds = DATASETS.build(cfg)
    except FileNotFoundError as e:
        raise MissingInputError(f'{what}: {e}') from e
    if len(ds) == 0:
        prefix = cfg.get('data_prefix') or {}
        where = osp.join(root or '', prefix.get('img_path', '') or '')
        raise MissingInputError(f'{what}: no images found under {where!r}')
    if hasattr(ds, 'get_data_info'):
        for i in range(len(ds)):
            path = ds.get_data_info(i).get('img_path')
            if not isinstance(path, str) or '://' in path:
                continue  # remote storage: left to the loader
            if not osp.isfile(path):
                raise MissingInputError(f'{what}: image {path!r} is missing')
            if osp.getsize(path) == 0:
                raise InvalidValueError(
                    f'{what}: image file {path!r} is empty '
                    '(0 bytes)')
    return len(ds)
