"""Config loading for the tools, and readable errors for unknown types."""
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
    'registered_types'
]

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

    Applies ``--cfg-options`` and the launcher, and sets ``work_dir`` with
    mmseg's priority: argument > config field > ``./work_dirs/<config name>``.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
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
