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

A preset reads its data root from an environment variable, with mmengine's
``{{$VAR:default}}`` (``'{{$SMIYC_ROOT:data/smiyc}}/dataset_AnomalyTrack'``).
:func:`~mmseg_ood.datasets.check_dataset_files` (which the tools call
once the flags are checked, before a model is built) or
``load_dataset_preset(..., check_data_root=True)`` check that root: a
variable that is not set (and a default that does not exist), or set to a
folder that does not exist, is a
:class:`~mmseg_ood.errors.MissingInputError` naming the variable, the
preset and what to set.
"""
from __future__ import annotations

import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

from mmengine.config import Config

from ..errors import InvalidValueError, MissingInputError
from ..evaluation.accumulators.components import SIZE_PRESETS
from ..utils.config import config_root

__all__ = ['DatasetPreset', 'available_dataset_presets',
           'dataset_preset_dir', 'load_dataset_preset',
           'check_preset_data_root', 'missing_root_message']


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


#: mmengine's ``{{$VAR:default}}`` in a config file.
_ENV_REFERENCE = re.compile(
    r"""\{\{['"]?\s*\$(\w+)\s*(?::\s*(\S*?))?\s*['"]?\}\}""")
_DATA_ROOT = re.compile(r"""data_root\s*=\s*(['"])(.*?)\1""")


def _read_text(path: str) -> str:
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return ''  # Config.fromfile reports it


def _data_root_template(text: str) -> Optional[str]:
    """The ``data_root`` of a preset file as written, each
    ``{{$VAR:default}}`` shown as ``$VAR``."""
    found = _DATA_ROOT.search(text)
    if found is None:
        return None
    return _ENV_REFERENCE.sub(lambda m: f'${m.group(1)}', found.group(2))


def _load_preset_config(path: str, name: str, text: str) -> Config:
    try:
        return Config.fromfile(path)
    except KeyError as e:
        # mmengine: `{{$VAR:}}` without a default and VAR not set (or
        # empty)
        variables = [v for v, _ in _ENV_REFERENCE.findall(text)
                     if v in str(e) and not os.environ.get(v)]
        if not variables:
            raise
        var = variables[0]
        state = 'is empty' if var in os.environ else 'is not set'
        raise MissingInputError(
            f'dataset {name!r} (preset {path}): the environment variable '
            f'{var} {state}; set it to the folder of the dataset, e.g. '
            f'export {var}=/path/to/data') from None


#: data root (normalised) -> the preset that made it from an environment
#: variable: :func:`missing_root_message` explains a missing one.
_ROOTS_FROM_VARIABLES: Dict[str, 'DatasetPreset'] = {}


def _root_problem(preset: 'DatasetPreset') -> Optional[str]:
    """What is wrong with the preset's data root, naming the variable it
    comes from; ``None`` if it is a folder or written without one."""
    root = preset.dataset.get('data_root')
    if not isinstance(root, str) or not root or '://' in root or \
            osp.isdir(root):
        return None
    text = _read_text(preset.path) if preset.path else ''
    refs = _ENV_REFERENCE.findall(text)
    if not refs:
        return None
    template = _data_root_template(text) or root
    what = (f'dataset {preset.name!r} (preset {preset.path}) reads its data '
            f'from {template}')
    unset = [(v, d) for v, d in refs if v not in os.environ]
    var = unset[0][0] if unset else refs[0][0]
    below = template[len(var) + 1:].strip('/') \
        if template.startswith(f'${var}') else ''
    folder = (f'the folder that holds {below}/' if below else
              'the folder of the dataset')
    if unset:
        default = unset[0][1]
        example = osp.basename(osp.normpath(default)) if default else 'data'
        return (f'{what}, but the environment variable {var} is not set and '
                f'the default data root {root!r} does not exist; set {var} '
                f'to {folder}, e.g. export {var}=/path/to/{example}')
    value = os.environ[var]
    problem = (f'{var}={value} does not exist' if not osp.exists(value) else
               f'{var}={value} is not a folder' if not osp.isdir(value) else
               f'the data root {root!r} does not exist')
    return f'{what}; {problem}: set {var} to {folder}'


def check_preset_data_root(preset: 'DatasetPreset') -> None:
    """Check that a preset's data root exists, naming the environment
    variable it comes from when it does not.

    Args:
        preset: A loaded preset (:func:`load_dataset_preset`).

    Raises:
        MissingInputError: The data root is not a folder and comes from an
            environment variable (``{{$VAR:default}}`` in the preset): the
            message names the variable, whether it is set, the preset and
            what to set it to. A data root written without a variable is
            left to :func:`~mmseg_ood.datasets.check_dataset_files`.
    """
    problem = _root_problem(preset)
    if problem is not None:
        raise MissingInputError(problem)


def missing_root_message(data_root: str) -> Optional[str]:
    """Why ``data_root`` is missing, if a preset loaded in this process
    made it from an environment variable (the message of
    :func:`check_preset_data_root`); else ``None``.
    :func:`~mmseg_ood.datasets.check_dataset_files` uses it, so that every
    tool that checks its datasets before building a model names the
    variable.

    Args:
        data_root: A dataset's ``data_root``.

    Returns:
        str | None: The message, or ``None``.
    """
    if not isinstance(data_root, str) or not data_root:
        return None
    preset = _ROOTS_FROM_VARIABLES.get(osp.normpath(data_root))
    return None if preset is None else _root_problem(preset)


def load_dataset_preset(spec: str,
                        check_data_root: bool = False) -> DatasetPreset:
    """A preset by name (``synthetic_ood``) or file path (``*.py``).

    Args:
        spec: A preset name (:func:`available_dataset_presets`) or the path
            of a preset file.
        check_data_root: Check now that the data root exists
            (:func:`check_preset_data_root`). Without it, the tools'
            :func:`~mmseg_ood.datasets.check_dataset_files` (after the
            flags are checked, before a model is built) names the variable
            all the same.

    Returns:
        DatasetPreset: The preset.

    Raises:
        InvalidValueError: an unknown name (listing the available ones), a
            file without ``ood_dataset``, an unknown ``component_preset``,
            or a ``whole_image`` that is not a bool.
        MissingInputError: A variable the preset reads without a default
            is not set; with ``check_data_root``, the data root comes from
            an environment variable that is not set, or set to a folder
            that does not exist (:func:`check_preset_data_root`).
    """
    spec = str(spec)
    path = spec if spec.endswith('.py') else osp.join(dataset_preset_dir(),
                                                      f'{spec}.py')
    if not osp.isfile(path):
        raise InvalidValueError(
            f'unknown dataset {spec!r}: not a preset (available: '
            f'{", ".join(available_dataset_presets())}) nor a config file '
            'defining `ood_dataset`')
    name = osp.splitext(osp.basename(path))[0]
    cfg = _load_preset_config(path, name, _read_text(path))
    if not isinstance(cfg.get('ood_dataset'), dict):
        raise InvalidValueError(
            f'{path}: a dataset preset must define '
            '`ood_dataset = dict(type=..., data_root=...)`')
    component_preset = cfg.get('component_preset', 'anomaly_track')
    if component_preset not in SIZE_PRESETS:
        raise InvalidValueError(
            f'{path}: `component_preset` must be one of '
            f'{sorted(SIZE_PRESETS)}, got {component_preset!r}')
    smiyc_name = cfg.get('smiyc_name', name)
    if not isinstance(smiyc_name, str) or not smiyc_name:
        raise InvalidValueError(
            f'{path}: `smiyc_name` must be a non-empty str, got '
            f'{smiyc_name!r}')
    whole_image = cfg.get('whole_image', False)
    if not isinstance(whole_image, bool):
        raise InvalidValueError(
            f'{path}: `whole_image` must be True or False, got '
            f'{whole_image!r}')
    preset = DatasetPreset(name=name, dataset=cfg.ood_dataset.to_dict(),
                           component_preset=component_preset,
                           smiyc_name=smiyc_name, path=path,
                           whole_image=whole_image)
    root = preset.dataset.get('data_root')
    if isinstance(root, str) and root and \
            _ENV_REFERENCE.search(_read_text(path)):
        _ROOTS_FROM_VARIABLES[osp.normpath(root)] = preset
    if check_data_root:
        check_preset_data_root(preset)
    return preset
