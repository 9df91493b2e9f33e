"""Config loading for the tools, the package's own configs, and readable
errors for unknown types.

The package's configs (``configs/`` of the repository: model configs and the
OOD dataset presets) ship inside the wheel under ``mmseg_ood/.mim/configs``,
where mmseg keeps its own. mmengine's ``pkg::`` scope knows only OpenMMLab's
packages, so the tools resolve ``mmseg_ood::<path>`` themselves
(:func:`resolve_config_path`); in a clone or an editable install the
repository's ``configs/`` serves. ``mmseg::<path>`` (and any installed
OpenMMLab package's ``<package>::<path>``) names a config of that package's
model zoo, wherever a tool takes a config.
"""
from __future__ import annotations

import contextlib
import difflib
import os.path as osp
import re
from typing import Iterator, Optional

from mmengine.config import Config
from mmengine.registry import Registry

from mmseg_ood.errors import (DamagedFileError, MissingExtraError,
                              MissingFieldError, MissingInputError)

__all__ = [
    'load_config', 'explain_unknown_types', 'UnknownTypeError',
    'registered_types', 'config_root', 'resolve_config_path', 'CONFIG_SCOPE',
    'sync_bn_to_bn', 'read_config'
]

#: Prefix of a path in the package's configs, ``mmseg_ood::synthetic/...``.
CONFIG_SCOPE = 'mmseg_ood::'
_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_root() -> str:
    """Directory of the package's configs: ``mmseg_ood/.mim/configs`` in an
    installed wheel, else the repository's ``configs/`` (clone, editable
    install).

    Raises:
        FileNotFoundError: neither exists (a broken installation).
    """
    for root in (osp.join(_PACKAGE_DIR, '.mim', 'configs'),
                 osp.join(osp.dirname(_PACKAGE_DIR), 'configs')):
        if osp.isdir(root):
            return root
    raise MissingInputError(
        f'the configs of mmseg_ood are missing: neither {_PACKAGE_DIR}/.mim/'
        f'configs (installed package) nor {osp.dirname(_PACKAGE_DIR)}/configs '
        '(clone) exists; reinstall the package')


#: Extra of mmseg_ood that installs an OpenMMLab package whose configs a
#: ``<package>::`` path may name.
_EXTRA_OF_PACKAGE = {'mmdet': 'mask2former', 'mmpretrain': 'zoo'}
_SCOPED = re.compile(r'^([A-Za-z_]\w*)::(.*)$')


def _package_config(path: str, package: str, rel: str) -> str:
    """The file ``<package>::<rel>`` names: ``<rel>`` under the configs an
    OpenMMLab package ships (``<package>/.mim/configs``, as mmengine's
    ``pkg::`` bases do)."""
    import importlib.util
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        if package in _EXTRA_OF_PACKAGE:
            raise MissingExtraError(
                f'config {path!r} needs the package {package}, which is not '
                "installed: pip install 'mmseg_ood["
                f"{_EXTRA_OF_PACKAGE[package]}]'")
        raise MissingInputError(
            f'config {path!r}: no installed package {package!r}; a scoped '
            f'config is <package>::<path>, e.g. mmseg::deeplabv3plus/'
            'deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py or '
            f'{CONFIG_SCOPE}synthetic/'
            'deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py')
    root = osp.join(osp.dirname(spec.origin), '.mim', 'configs')
    full = osp.join(root, rel)
    if not osp.isfile(full):
        where = (f'in the configs {package} ships ({root})'
                 if osp.isdir(root) else
                 f'{package} was installed without its configs (no {root}; '
                 'install it from PyPI, or give the config file path)')
        raise MissingInputError(f'config {path!r} not found: no {rel} '
                                f'{where}')
    return full


def resolve_config_path(path: str) -> str:
    """The file a config argument names.

    ``mmseg_ood::<relative path>`` is a config of this package (see
    :func:`config_root`); ``<package>::<relative path>`` a config that an
    installed OpenMMLab package ships (``mmseg::deeplabv3plus/...py``, the
    model zoo's names, as in mmseg's tools and mmengine's ``_base_``);
    anything else is a file path.

    Args:
        path: The config argument.

    Returns:
        str: The path of the config file.

    Raises:
        MissingInputError: The file does not exist (naming the path and,
            for a scoped name, where it was looked up), or the package of
            a scoped name is not installed.
        MissingExtraError: The package is one of an extra of mmseg_ood
            (``mmdet::``: ``[mask2former]``, ``mmpretrain::``: ``[zoo]``)
            and is not installed.
    """
    path = str(path)
    if path.startswith(CONFIG_SCOPE):
        rel = path[len(CONFIG_SCOPE):]
        full = osp.join(config_root(), rel)
        if not osp.isfile(full):
            raise MissingInputError(
                f'config {path!r} not found: no {rel} in the package configs '
                f'({config_root()})')
        return full
    scoped = _SCOPED.match(path)
    if scoped is not None and not osp.isfile(path):
        return _package_config(path, *scoped.groups())
    if osp.isdir(path):
        raise MissingInputError(
            f'config file not found: {path} is a folder; give a config '
            'file (.py)')
    if not osp.isfile(path):
        raise MissingInputError(
            f'config file not found: {path} (configs shipped with mmseg_ood '
            f'are named {CONFIG_SCOPE}<path>, e.g. '
            f'{CONFIG_SCOPE}synthetic/'
            'deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py; '
            "mmseg's model zoo configs mmseg::<path>)")
    return path


# mmengine's build_from_cfg: "<type> is not in the <scope>::<name> registry."
_UNKNOWN_TYPE = re.compile(
    r'([^\s\'"`]+) is not in the (\w+)::(\w+) registry')


class UnknownTypeError(MissingFieldError):
    """A config names a ``type`` that no registry in scope knows."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def _find_registry(scope: str, name: str) -> Optional[Registry]:
    import mmengine.registry as root_registries
    for root in vars(root_registries).values():
        if not isinstance(root, Registry) or root.name != name:
            continue
        todo = [root]
        while todo:
            reg = todo.pop()
            if reg.scope == scope:
                return reg
            todo.extend(reg.children.values())
    return None


def registered_types(scope: str, name: str) -> list:
    """Every type name that registry ``scope::name`` can build, sorted.

    Includes the types of its parents (for mmseg: mmengine's), since
    mmengine falls back to them.

    Args:
        scope: The registry's scope, e.g. ``'mmseg'`` or ``'mmengine'``.
        name: The registry's name, e.g. ``'model'``, ``'metric'``,
            ``'hook'``.

    Returns:
        list: Sorted type names; empty if no such registry exists.
    """
    reg = _find_registry(scope, name)
    names = set()
    while reg is not None:
        names.update(reg.module_dict)
        reg = reg.parent
    return sorted(names)


def _unknown_type_message(obj_type: str, scope: str, name: str) -> str:
    choices = registered_types(scope, name)
    close = difflib.get_close_matches(obj_type, choices, n=3, cutoff=0.6)
    hint = f' Did you mean {", ".join(map(repr, close))}?' if close else ''
    return (f'unknown type {obj_type!r} in the config: it is not registered '
            f'in the {scope}::{name} registry.{hint} Available choices '
            f'({len(choices)}): {", ".join(choices)}. If the type comes from '
            'a plugin, add it to `custom_imports`, e.g. '
            "custom_imports = dict(imports=['mmseg_ood'], "
            'allow_failed_imports=False).')


@contextlib.contextmanager
def explain_unknown_types() -> Iterator[None]:
    """Turn mmengine's "X is not in the registry" errors into
    :class:`UnknownTypeError` naming the type, the registry and the available
    choices (with close matches first)."""
    try:
        yield
    except UnknownTypeError:
        raise
    except KeyError as e:
        match = _UNKNOWN_TYPE.search(str(e))
        if match is None:
            raise
        raise UnknownTypeError(_unknown_type_message(*match.groups())) from e


_ENV_NOT_FOUND = re.compile(r'`(\w+)` cannot be found in `os.environ`')


def read_config(config: str) -> Config:
    """``Config.fromfile`` of a config argument, with named errors.

    Args:
        config: A file, ``mmseg_ood::<path>`` or ``<package>::<path>``
            (:func:`resolve_config_path`).

    Returns:
        Config: The config, its ``_base_`` files merged.

    Raises:
        MissingInputError: The file, a ``_base_`` file it names, or an
            environment variable it reads without a default
            (``{{$VAR:}}``) is missing.
        DamagedFileError: The file is not valid Python (naming the line) or
            not UTF-8 text.
    """
    path = resolve_config_path(config)
    try:
        return Config.fromfile(path)
    except SyntaxError as e:
        raise DamagedFileError(
            f'config {path}: not a valid config file: '
            f'{" ".join(str(e).split())}') from e
    except UnicodeDecodeError as e:
        raise DamagedFileError(
            f'config {path}: not UTF-8 text ({e.reason} at byte '
            f'{e.start})') from e
    except KeyError as e:
        missing = _ENV_NOT_FOUND.search(str(e))
        if missing is None:
            raise
        raise MissingInputError(
            f'config {path} reads the environment variable '
            f'{missing.group(1)}, which is not set (or empty) and has no '
            f'default; set it: export {missing.group(1)}=...') from e
    except FileNotFoundError as e:
        if isinstance(e, MissingInputError):
            raise
        raise MissingInputError(f'config {path}: {e}') from e


def load_config(config: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Load ``config`` the way mmseg's tools do.

    ``config`` is a file, ``mmseg_ood::<path>`` or ``mmseg::<path>``
    (:func:`resolve_config_path`, :func:`read_config`).
    Applies ``--cfg-options`` and the launcher, and sets ``work_dir`` with
    mmseg's priority: argument > config field > ``./work_dirs/<config name>``.

    Args:
        config: A config file, ``mmseg_ood::<path>`` or ``mmseg::<path>``.
        cfg_options: ``--cfg-options`` as a dict of dotted keys to values
            (``{'model.decode_head.num_classes': 6}``), merged last;
            ``None``: none.
        work_dir: Output folder (``--work-dir``); overrides the config's.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``, set
            as ``cfg.launcher``.

    Returns:
        Config: The merged config, ``work_dir`` and ``launcher`` set.

    Raises:
        MissingInputError: The config (or an environment variable it
            needs) is missing.
        DamagedFileError: The config file cannot be read as a config.
    """
    config = resolve_config_path(config)
    cfg = read_config(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])
    return cfg


def sync_bn_to_bn(cfg) -> None:
    """Replace every ``type='SyncBN'`` in a (nested) config by ``'BN'``, in
    place: model-zoo configs use SyncBN, which needs a process group, so
    that one CPU process can build them.

    Args:
        cfg: A config or any part of it (dicts, lists, tuples nested to
            any depth); dicts are changed in place.
    """
    if isinstance(cfg, dict):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
        for v in cfg.values():
            sync_bn_to_bn(v)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            sync_bn_to_bn(v)
