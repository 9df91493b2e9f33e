"""Safe loading of checkpoints written by mmengine / mmseg.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses every
pickled global outside torch's own allow-list. A checkpoint written by
mmengine's Runner holds, besides tensors, its ``meta`` and ``message_hub``
(HistoryBuffer, numpy arrays and scalars), so plain ``torch.load`` - and
hence mmengine 0.10.7's ``load_checkpoint`` - fails on it.

This module keeps ``weights_only=True`` and allows exactly the globals in
:data:`SAFE_GLOBALS`. A checkpoint that needs anything else is refused with
:class:`UnsafeCheckpointError`, naming the global and the ``--unsafe-load``
flag; only that flag (``unsafe=True``) loads with full pickle.

:func:`safe_checkpoint_loading` routes mmengine's local-file loader (used by
``Runner`` for ``load_from`` / ``resume`` and by
``mmengine.runner.load_checkpoint``) through :func:`load_checkpoint_file`
for the duration of a ``with`` block, so ``tools/test.py`` and
``tools/train.py`` get the same behaviour as the plugin's own tools.
"""
from __future__ import annotations

import _codecs
import collections
import contextlib
import hashlib
import os.path as osp
import pickle
import re
from typing import Any, Iterator

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'SAFE_GLOBALS', 'UnsafeCheckpointError', 'load_checkpoint_file',
    'safe_checkpoint_loading', 'file_sha256'
]

UNSAFE_FLAG = '--unsafe-load'


def _numpy_core_global(name: str):
    # numpy 2 pickles arrays via numpy._core; numpy 1 via numpy.core.
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return getattr(multiarray, name)


def _numpy_dtype_classes() -> list:
    # numpy >= 1.25 pickles a dtype's class (e.g. numpy.dtypes.Float64DType)
    # when an array's dtype is pickled on its own.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is None:
        return []
    return [
        getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')
        and isinstance(getattr(dtypes, n), type)
    ]


def _history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to HistoryBuffer's statistics methods.

    A HistoryBuffer pickles its ``statistics_methods`` dict of bound methods
    as ``getattr(HistoryBuffer, 'min')`` etc. Plain ``builtins.getattr``
    would let a crafted file reach any attribute of any allowed object, so
    this stand-in is registered under that name and allows only public
    attributes of HistoryBuffer.
    """
    if obj is not HistoryBuffer or not isinstance(name, str) \
            or name.startswith('_'):
        raise pickle.UnpicklingError(
            f'refusing getattr({obj!r}, {name!r}): the safe loader allows '
            'getattr only for the public statistics methods of '
            'mmengine HistoryBuffer')
    return getattr(obj, name)


#: Globals a Runner-written checkpoint pickles besides tensors. Each is a
#: plain container or a numpy reconstructor; none runs code on its own.
#: ``builtins.getattr`` is allowed only as :func:`_history_buffer_getattr`.
SAFE_GLOBALS = [
    (_history_buffer_getattr, 'builtins.getattr'),
    collections.OrderedDict,
    HistoryBuffer,
    np.dtype,
    np.ndarray,
    _numpy_core_global('_reconstruct'),
    _numpy_core_global('scalar'),
    _codecs.encode,
] + _numpy_dtype_classes()

_UNSUPPORTED = re.compile(r'GLOBAL (\S+) was not an allowed global')
_UNPICKLER_REASON = re.compile(
    r'WeightsUnpickler error:\s*(.*?)\s*(?:\n\n|$)', re.S)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs a global outside :data:`SAFE_GLOBALS`."""


def load_checkpoint_file(filename: str,
                         map_location: Any = 'cpu',
                         unsafe: bool = False) -> Any:
    """Load a checkpoint file with ``weights_only=True`` and the allow-list.

    Args:
        filename: Path of a file written by ``torch.save``.
        map_location: As in ``torch.load``.
        unsafe: Load with full pickle (``weights_only=False``). Only for
            checkpoints from a trusted source: unpickling can run any code.

    Returns:
        Whatever the file holds (usually a dict with ``state_dict``, ``meta``
        and, for Runner checkpoints, ``message_hub`` and ``optimizer``).

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        UnsafeCheckpointError: The file needs a global outside the allow-list;
            the message names it and the ``--unsafe-load`` flag.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    if unsafe:
        return torch.load(filename, map_location=map_location,
                          weights_only=False)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as e:
        match = _UNSUPPORTED.search(str(e))
        reason = _UNPICKLER_REASON.search(str(e))
        what = (f'the global `{match.group(1)}`' if match else
                'an object the safe loader refuses '
                f'({reason.group(1) if reason else e})')
        raise UnsafeCheckpointError(
            f'checkpoint {filename} needs {what}, which is not on '
            "mmseg_ood's allow-list of safe globals "
            '(mmseg_ood.utils.checkpoint.SAFE_GLOBALS). Unpickling it could '
            'run arbitrary code. If you trust the file, pass '
            f'{UNSAFE_FLAG} to load it with full pickle.') from None


@contextlib.contextmanager
def safe_checkpoint_loading(unsafe: bool = False) -> Iterator[None]:
    """Route mmengine's local checkpoint loader through the safe loader.

    Inside the block, ``Runner.load_checkpoint`` (``load_from``, ``resume``),
    ``mmengine.runner.load_checkpoint`` and ``CheckpointLoader`` load local
    files with :func:`load_checkpoint_file`. The previous loader is restored
    on exit.

    Args:
        unsafe: Passed on to :func:`load_checkpoint_file`.
    """
    schemes = CheckpointLoader._schemes
    previous = schemes['']

    def load_local(filename, map_location):
        return load_checkpoint_file(filename, map_location, unsafe=unsafe)

    schemes[''] = load_local
    try:
        yield
    finally:
        schemes[''] = previous


def checkpoint_state_dict(ckpt) -> dict:
    """The parameters of a loaded checkpoint (``state_dict`` or the dict
    itself), with DDP's ``module.`` prefix removed."""
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    return {k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in state.items()}


def check_checkpoint_fits(model: torch.nn.Module, ckpt, checkpoint: str,
                          config: str) -> None:
    """Raise ``ValueError`` naming config and checkpoint if their parameter
    names or shapes differ (e.g. another number of classes).

    Args:
        model: The model the config builds.
        ckpt: The loaded checkpoint (a dict, with or without ``state_dict``).
        checkpoint / config: File names for the message.
    """
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape)
              for k, v in checkpoint_state_dict(ckpt).items()
              if hasattr(v, 'shape')}
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    shapes = sorted(k for k in set(own) & set(theirs) if own[k] != theirs[k])
    if not (missing or unexpected or shapes):
        return
    lines = [f'checkpoint {checkpoint} does not fit config {config}:']
    if shapes:
        lines += [f'  {k}: checkpoint {theirs[k]}, config {own[k]}'
                  for k in shapes[:10]]
        if any('conv_seg' in k for k in shapes):
            lines.append('  (the number of classes differs: set '
                         'num_classes in the config to match the checkpoint)')
    if missing:
        lines.append(f'  {len(missing)} parameters missing from the '
                     f'checkpoint, e.g. {missing[:5]}')
    if unexpected:
        lines.append(f'  {len(unexpected)} unexpected parameters in the '
                     f'checkpoint, e.g. {unexpected[:5]}')
    raise ValueError('\n'.join(lines))


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
