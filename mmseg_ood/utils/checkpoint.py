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

A file that is not a checkpoint (empty, text, random bytes, a truncated
``torch.save``, a folder, a pickle of something else than a dict) is a
:class:`~mmseg_ood.errors.DamagedFileError` naming the file, never an
``EOFError`` / ``KeyError`` / ``RuntimeError`` from inside torch. Readers
take the parts of a loaded checkpoint through :func:`checkpoint_meta`
(``{}`` when the file has no ``meta``, as model-zoo and bare state-dict
files do) and :func:`checkpoint_state_dict` (checked: names to tensors).

:func:`state_dict_sha256` identifies the weights, not the file: the same
parameters re-saved, converted to or from a Runner checkpoint, with or
without DDP's ``module.`` prefix or in another key order, hash the same.
"""
from __future__ import annotations

import _codecs
import collections
import contextlib
import hashlib
import os
import os.path as osp
import pickle
import re
import stat
from typing import Any, Iterator, Mapping, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from mmseg_ood.errors import (DamagedFileError, InvalidValueError,
                              MissingInputError, UserError)

__all__ = [
    'SAFE_GLOBALS', 'UnsafeCheckpointError', 'load_checkpoint_file',
    'safe_checkpoint_loading', 'file_sha256', 'checkpoint_meta',
    'checkpoint_state_dict', 'check_checkpoint_fits', 'state_dict_sha256',
    'with_meta'
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


class UnsafeCheckpointError(UserError, pickle.UnpicklingError):
    """A checkpoint needs a global outside :data:`SAFE_GLOBALS`."""


#: Refusals of torch's weights-only unpickler that mean "a global (code)
#: outside the allow-list", as opposed to bytes that are no pickle at all.
_UNSAFE_REASONS = ('GLOBAL', 'Can only create new object',
                   'Can only build', 'Trying to call reduce',
                   'refusing getattr')

_NOT_A_CHECKPOINT = 'not a checkpoint written by torch.save'


def _damaged(filename: str, why: str) -> DamagedFileError:
    return DamagedFileError(
        f'checkpoint {filename} is {_NOT_A_CHECKPOINT} ({why}): truncated '
        'by an interrupted copy or download, or another kind of file? '
        'Give the .pth file a training run or tools/convert_checkpoint.py '
        'wrote')


def _first_line(error: BaseException) -> str:
    text = next((ln.strip() for ln in str(error).splitlines() if ln.strip()),
                '')
    text = f'{type(error).__name__}: {text}' if text else \
        type(error).__name__
    return text if len(text) <= 160 else text[:157] + '...'


def _check_readable_file(filename: str) -> None:
    """A regular, non-empty file; else a named error."""
    if not osp.exists(filename):
        raise MissingInputError(f'checkpoint file not found: {filename}')
    if osp.isdir(filename):
        raise DamagedFileError(f'checkpoint {filename} is a folder, not a '
                               'checkpoint file; give the .pth file in it')
    mode = os.stat(filename).st_mode
    if not stat.S_ISREG(mode):
        raise DamagedFileError(f'checkpoint {filename} is not a regular '
                               f'file; {_NOT_A_CHECKPOINT}')
    if os.stat(filename).st_size == 0:
        raise _damaged(filename, 'the file is empty')
    with open(filename, 'rb'):  # a PermissionError names the file
        pass


def load_checkpoint_file(filename: str,
                         map_location: Any = 'cpu',
                         unsafe: bool = False) -> dict:
    """Load a checkpoint file with ``weights_only=True`` and the allow-list.

    Args:
        filename: Path of a file written by ``torch.save``.
        map_location: As in ``torch.load``.
        unsafe: Load with full pickle (``weights_only=False``). Only for
            checkpoints from a trusted source: unpickling can run any code.

    Returns:
        dict: What the file holds (usually ``state_dict``, ``meta`` and,
        for Runner checkpoints, ``message_hub`` and ``optimizer``; a bare
        state dict for some model-zoo files). Read its parts with
        :func:`checkpoint_meta` and :func:`checkpoint_state_dict`.

    Raises:
        MissingInputError: ``filename`` does not exist
            (a ``FileNotFoundError``).
        DamagedFileError: ``filename`` is a folder, empty, not a file
            ``torch.save`` wrote (text, random bytes, a truncated file), or
            holds something else than a dict; the message names the file.
        UnsafeCheckpointError: The file needs a global outside the
            allow-list; the message names it and the ``--unsafe-load`` flag.
    """
    filename = osp.expanduser(os.fspath(filename))
    _check_readable_file(filename)
    try:
        if unsafe:
            ckpt = torch.load(filename, map_location=map_location,
                              weights_only=False)
        else:
            with torch.serialization.safe_globals(SAFE_GLOBALS):
                ckpt = torch.load(filename, map_location=map_location,
                                  weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        reason = _UNPICKLER_REASON.search(text)
        reason = reason.group(1) if reason else text
        if unsafe or not any(r in reason for r in _UNSAFE_REASONS):
            raise _damaged(filename, reason.splitlines()[0][:160]
                           if reason.strip() else 'UnpicklingError') \
                from None
        match = _UNSUPPORTED.search(text)
        what = (f'the global `{match.group(1)}`' if match else
                f'an object the safe loader refuses ({reason})')
        raise UnsafeCheckpointError(
            f'checkpoint {filename} needs {what}, which is not on '
            "mmseg_ood's allow-list of safe globals "
            '(mmseg_ood.utils.checkpoint.SAFE_GLOBALS). Unpickling it could '
            'run arbitrary code. If you trust the file, pass '
            f'{UNSAFE_FLAG} to load it with full pickle.') from None
    except (PermissionError, MemoryError):
        raise
    except Exception as e:  # torch.load's failures have no common base:
        # EOFError, KeyError, RuntimeError (zip), OSError EINVAL (truncated
        # zip), UnicodeDecodeError, ImportError / AttributeError (unsafe)
        raise _damaged(filename, _first_line(e)) from None
    if not isinstance(ckpt, Mapping):
        raise DamagedFileError(
            f'checkpoint {filename} holds a {type(ckpt).__name__}, not the '
            'dict of a checkpoint (state_dict, meta): is it a checkpoint '
            'of this kind of model?')
    return ckpt


@contextlib.contextmanager
def safe_checkpoint_loading(unsafe: bool = False) -> Iterator[None]:
    """Route mmengine's local checkpoint loader through the safe loader.

    Inside the block, ``Runner.load_checkpoint`` (``load_from``, ``resume``),
    ``mmengine.runner.load_checkpoint`` and ``CheckpointLoader`` load local
    files with :func:`load_checkpoint_file`, as :func:`with_meta` gives
    them (so mmseg's ``init_model``, which reads ``checkpoint['meta']``,
    takes a model-zoo file without one). The previous loader is restored
    on exit.

    Args:
        unsafe: Passed on to :func:`load_checkpoint_file`.
    """
    schemes = CheckpointLoader._schemes
    previous = schemes['']

    def load_local(filename, map_location):
        return with_meta(load_checkpoint_file(filename, map_location,
                                              unsafe=unsafe))

    schemes[''] = load_local
    try:
        yield
    finally:
        schemes[''] = previous


def with_meta(ckpt: Mapping) -> Mapping:
    """``ckpt`` in the layout mmengine and mmseg index without checking:
    a ``state_dict`` and a ``meta`` dict.

    A checkpoint without ``meta`` gets an empty one, a bare state dict (all
    values tensors) is put under ``state_dict``; anything else is returned
    as it is (the weights are the same: mmengine takes ``state_dict`` when
    there is one, else the dict itself).

    Args:
        ckpt: A loaded checkpoint (what ``torch.load`` returned); not
            modified.

    Returns:
        Mapping: ``ckpt`` itself, or a new dict in that layout.
    """
    if not isinstance(ckpt, Mapping):
        return ckpt
    if 'state_dict' not in ckpt and ckpt and all(
            isinstance(v, torch.Tensor) for v in ckpt.values()):
        return {'state_dict': ckpt, 'meta': {}}
    if 'state_dict' in ckpt and not isinstance(ckpt.get('meta'), dict):
        return dict(ckpt, meta={})
    return ckpt


def checkpoint_meta(ckpt) -> dict:
    """The ``meta`` of a loaded checkpoint: a dict, ``{}`` when the file
    has none (model-zoo and bare state-dict files) or when it is not a
    dict. Read ``dataset_meta`` and the rest from it with ``.get``.

    Args:
        ckpt: A loaded checkpoint (what ``torch.load`` returned), of any
            type.
    """
    meta = ckpt.get('meta') if isinstance(ckpt, Mapping) else None
    return meta if isinstance(meta, dict) else {}


def _is_extra_state(key: str) -> bool:
    # nn.Module.get_extra_state() entries may be any object
    return key.endswith('_extra_state')


def checkpoint_state_dict(ckpt, source: Optional[str] = None) -> dict:
    """The parameters of a loaded checkpoint (its ``state_dict``, or the
    dict itself for a bare state dict), with DDP's ``module.`` prefix
    removed, checked: names are strings and values tensors.

    Args:
        ckpt: What :func:`load_checkpoint_file` returned.
        source: The file, as messages name it.

    Returns:
        dict: parameter name -> tensor.

    Raises:
        DamagedFileError: ``ckpt`` is not a dict; its ``state_dict`` is not
            a dict; a dict with neither a ``state_dict`` nor only tensors
            (another framework's layout: ``model``, ``params``...); a name
            that is not a string or a value that is not a tensor (the
            message names the first one).
    """
    where = f'checkpoint {source}' if source else 'the checkpoint'
    if not isinstance(ckpt, Mapping):
        raise DamagedFileError(f'{where} holds a {type(ckpt).__name__}, not '
                               'a dict with a state_dict')
    if 'state_dict' in ckpt:
        state = ckpt['state_dict']
        if not isinstance(state, Mapping):
            raise DamagedFileError(
                f"{where}: 'state_dict' is a {type(state).__name__}, not a "
                'dict of parameter names to tensors')
        field = "'state_dict'"
    else:
        state = ckpt
        others = [k for k, v in ckpt.items()
                  if not isinstance(v, torch.Tensor)
                  and not (isinstance(k, str) and _is_extra_state(k))]
        if others:
            raise DamagedFileError(
                f"{where} has no 'state_dict' and is not a bare state dict "
                f'(it holds {sorted(map(str, ckpt))[:6]}): a checkpoint of '
                'another framework? mmseg reads the weights from '
                "'state_dict'")
        field = 'the bare state dict'
    out = {}
    for k, v in state.items():
        if not isinstance(k, str):
            raise DamagedFileError(f'{where}: {field} has a key {k!r} of '
                                   f'type {type(k).__name__}, not a '
                                   'parameter name')
        if not isinstance(v, torch.Tensor) and not _is_extra_state(k):
            raise DamagedFileError(
                f'{where}: {field} entry {k!r} is a {type(v).__name__}, not '
                'a tensor')
        out[k[len('module.'):] if k.startswith('module.') else k] = v
    return out


def state_dict_sha256(ckpt, source: Optional[str] = None) -> str:
    """SHA-256 (hex) of the weights: each parameter's name, dtype, shape
    and bytes, in name order.

    What defines the model, not the file: the same weights re-saved (a
    Runner checkpoint or a weights-only file, another pickle protocol,
    ``meta`` or optimizer state added), in another key order, or with
    DDP's ``module.`` prefix hash the same; another dtype or any changed
    value hashes differently. Tensors on a GPU are hashed from a CPU copy.

    Args:
        ckpt: A loaded checkpoint or a state dict (``model.state_dict()``).
        source: The file, as error messages name it.

    Raises:
        DamagedFileError: as :func:`checkpoint_state_dict`.
    """
    state = checkpoint_state_dict(ckpt, source)
    h = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        if not isinstance(value, torch.Tensor):  # extra state
            h.update(f'{name}\0extra\0{value!r}\0'.encode())
            continue
        t = value.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        t = t.cpu().contiguous()
        h.update(f'{name}\0{t.dtype}\0{tuple(t.shape)}\0'.encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_checkpoint_fits(model: torch.nn.Module, ckpt, checkpoint: str,
                          config: str) -> None:
    """Raise ``InvalidValueError`` naming config and checkpoint if their
    parameter names or shapes differ (e.g. another number of classes).

    Args:
        model: The model the config builds.
        ckpt: The loaded checkpoint (a dict, with or without ``state_dict``).
        checkpoint / config: File names for the message.

    Raises:
        InvalidValueError: names or shapes differ.
        DamagedFileError: the checkpoint holds no state dict of tensors
            (:func:`checkpoint_state_dict`).
    """
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape)
              for k, v in checkpoint_state_dict(ckpt, checkpoint).items()
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
    raise InvalidValueError('\n'.join(lines))


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB chunks.

    Args:
        path: The file (a checkpoint, typically; memory use stays at 1 MiB
            whatever its size).

    Returns:
        str: 64 lowercase hex digits.
    """
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
