"""Config loading for the tools, the package's own configs, and readable
errors for unknown types.

The package's configs (``configs/`` of the repository: model configs and the
OOD dataset presets) ship inside the wheel under ``mmseg_ood/.mim/configs``,
where mmseg keeps its own. mmengine's ``pkg::`` scope knows only OpenMMLab's
packages, so the tools resolve ``mmseg_ood::<path>`` themselves
(:func:`resolve_config_path`); in a clone or an editable install the
repository's ``configs/`` serves.
"""
from __future__ import annotations

import contextlib
import difflib
import os.path as osp
import re
from typing import Iterator, Optional

from mmengine.config import Config
from mmengine.registry import Registry

__all__ = [
    'load_config', 'explain_unknown_types', 'UnknownTypeError',
    'registered_types', 'config_root', 'resolve_config_path', 'CONFIG_SCOPE',
    'sync_bn_to_bn'
]

#: Prefix of a path in the package's configs: ``mmseg_ood::synthetic/...``.
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
    raise FileNotFoundError(
        f'the configs of mmseg_ood are missing: neither {_PACKAGE_DIR}/.mim/'
        f'configs (installed package) nor {osp.dirname(_PACKAGE_DIR)}/configs '
        '(clone) exists; reinstall the package')


def resolve_config_path(path: str) -> str:
    """The file a config argument names.

    ``mmseg_ood::<relative path>`` is a config of this package (see
    :func:`config_root`); anything else is a file path.

    Raises:
        FileNotFoundError: naming the path and, for ``mmseg_ood::``, where
            it was looked up.
    """
    if path.startswith(CONFIG_SCOPE):
        rel = path[len(CONFIG_SCOPE):]
        full = osp.join(config_root(), rel)
        if not osp.isfile(full):
            raise FileNotFoundError(
                f'config {path!r} not found: no {rel} in the package configs '
                f'({config_root()})')
        return full
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'config file not found: {path} (configs shipped with mmseg_ood '
            f'are named {CONFIG_SCOPE}<path>, e.g. '
            f'{CONFIG_SCOPE}synthetic/'
            'deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py)')
    return path


# mmengine's build_from_cfg: "<type> is not in the <scope>::<name> registry."
_UNKNOWN_TYPE = re.compile(
    r'([^\s\'"`]+) is not in the (\w+)::(\w+) registry')


class UnknownTypeError(KeyError):
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


def load_config(config: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Load ``config`` the way mmseg's tools do.

    ``config`` is a file or ``mmseg_ood::<path>``
    (:func:`resolve_config_path`).
    Applies ``--cfg-options`` and the launcher, and sets ``work_dir`` with
    mmseg's priority: argument > config field > ``./work_dirs/<config name>``.
    """
    config = resolve_config_path(config)
    cfg = Config.fromfile(config)
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
    that one CPU process can build them."""
    if isinstance(cfg, dict):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
        for v in cfg.values():
            sync_bn_to_bn(v)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            sync_bn_to_bn(v)
