"""One way to write files: atomic, never over an input, checked.

Every file the package writes goes through :func:`atomic_output` (or the
text / JSON shorthands built on it): the bytes go to a temporary file of
its own in the destination's folder, are flushed and ``fsync``-ed, and only
then ``os.replace`` puts the file under its final name. A writer that fails
or is killed leaves the previous file as it was and no partial file under
the final name (a killed process may leave its ``<name>.<random>.tmp``,
never the final name). :func:`check_output_path` refuses, before any work,
an output that is one of the run's inputs (``os.path.samefile``: symlinks
and hard links included), a folder, or a file in a folder that does not
exist.

Strict JSON: :func:`dump_json` writes NaN and infinities as ``null``, and
every JSON file written for a later run carries a ``schema_version``
(:func:`check_schema_version` is the readers' side).
"""
import contextlib
import json
import math
import os
import os.path as osp
import tempfile
from typing import Callable, Iterable, Iterator, Optional, Tuple

import numpy as np

from mmseg_ood.errors import (DamagedFileError, MissingInputError,
                              OutputPathError)

__all__ = [
    'atomic_output', 'write_with', 'atomic_write_text', 'check_output_path',
    'check_output_dir', 'file_key', 'same_file', 'dump_json', 'dump_text',
    'json_safe', 'load_json', 'check_schema_version', 'expect_field'
]


def file_key(path: str) -> Optional[Tuple[int, int]]:
    """``(device, inode)`` of an existing file, the same for every name of
    it (symlinks, hard links); ``None`` if there is no such file. The key
    :func:`same_file` compares, for checking many paths at once.

    Args:
        path: A path of any kind (links followed).

    Returns:
        tuple or None: ``(st_dev, st_ino)``, or ``None``.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def same_file(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` name the same existing file (through
    symlinks and hard links, as ``os.path.samefile``).

    Args:
        a / b: The two paths; ``False`` if either does not exist.
    """
    key = file_key(a)
    return key is not None and key == file_key(b)


def check_output_path(path: str, inputs: Iterable[Optional[str]] = (),
                      what: str = 'output') -> str:
    """Refuse an output file that cannot be written safely; return its
    absolute path.

    Args:
        path: The file to be written.
        inputs: Files the run reads (``None`` entries are skipped); the
            output must not be any of them, by any name.
        what: How the message names the output (e.g. ``'--out'``).

    Raises:
        OutputPathError: ``path`` is an input, an existing folder, or its
            folder does not exist (or is a file).
    """
    path = os.fspath(path)
    for src in inputs:
        if src is not None and same_file(path, os.fspath(src)):
            raise OutputPathError(
                f'{what} {path} is the input {src}: refusing to write over '
                'it; choose another output path')
    if osp.isdir(path):
        raise OutputPathError(f'{what} {path} is a folder; give a file path')
    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder):
        kind = 'is a file' if osp.exists(folder) else 'does not exist'
        raise OutputPathError(
            f'{what} {path}: its folder {folder} {kind}; create it first')
    return osp.abspath(path)


def check_output_dir(path: str, what: str = '--work-dir',
                     inputs: Iterable[Optional[str]] = ()) -> str:
    """Refuse an output folder that is an existing file (or one of the
    ``inputs``); return its absolute path. A folder that does not exist
    yet is created later by the tool.

    Args:
        path: The output folder.
        what: How the message names it (e.g. ``'--work-dir'``).
        inputs: Files and folders the run reads (``None`` entries are
            skipped); the folder must not be any of them.

    Returns:
        str: The absolute path.

    Raises:
        OutputPathError: ``path`` is a file or an input, or a file stands
            where one of its parent folders would be created.
    """
    path = os.fspath(path)
    if osp.exists(path) and not osp.isdir(path):
        raise OutputPathError(
            f'{what} {path} is a file, not a folder; give a folder path')
    for src in inputs:
        if src is not None and same_file(path, os.fspath(src)):
            raise OutputPathError(f'{what} {path} is the input {src}')
    parent = osp.dirname(osp.abspath(path))
    while parent and not osp.exists(parent):
        parent = osp.dirname(parent)
    if parent and not osp.isdir(parent):
        raise OutputPathError(
            f'{what} {path}: {parent} is a file, so the folder cannot be '
            'created')
    return osp.abspath(path)


@contextlib.contextmanager
def atomic_output(path: str, inputs: Iterable[Optional[str]] = (),
                  what: str = 'output',
                  allow_empty: bool = False) -> Iterator[str]:
    """Give a temporary path to write ``path``'s new contents to; replace
    ``path`` with it when the block ends without an error.

    The temporary file is in the same folder (so ``os.replace`` is atomic),
    is ``fsync``-ed before the replace, gets the permissions the umask
    gives a new file, and is removed if the block raises (or is
    interrupted). A block that leaves the temporary file empty is an error
    (unless ``allow_empty``): a writer that silently wrote nothing never
    replaces a good file.

    Args:
        path: The final file.
        inputs / what: As in :func:`check_output_path`, checked first.
        allow_empty: Accept an empty file (e.g. an empty text); default:
            an empty temporary file raises ``OSError`` and ``path`` is
            left as it was.

    Yields:
        The temporary path, for writers that take a file name
        (``torch.save``, ``torch.onnx.export``, ``cv2.imwrite``...).
    """
    path = check_output_path(path, inputs, what)
    # a temporary name of its own: two writers of one path (two processes,
    # a rerun beside a running job) never replace each other's half file;
    # the suffix keeps the extension (cv2.imwrite picks its codec by it)
    base, ext = osp.splitext(osp.basename(path))
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(path), prefix=base + '.',
                               suffix='.tmp' + ext)
    os.close(fd)
    try:
        yield tmp
        if not osp.isfile(tmp) or (osp.getsize(tmp) == 0
                                   and not allow_empty):
            raise OSError(f'writing {path} failed: the writer left no data')
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        _fsync_dir(osp.dirname(path))
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)


def write_with(path: str, write: Callable[[str], object],
               inputs: Iterable[Optional[str]] = (),
               what: str = 'output') -> str:
    """``write(tmp)`` inside :func:`atomic_output`; a writer returning
    ``False`` (``cv2.imwrite``'s failure) is a failed write. Returns the
    absolute final path.

    Args:
        path: The final file.
        write: Called with the temporary path; writes the file there.
        inputs / what: As in :func:`check_output_path`.

    Raises:
        OSError: the writer returned ``False`` or wrote nothing.
    """
    with atomic_output(path, inputs, what) as tmp:
        if write(tmp) is False:
            raise OSError(f'could not write {path} (the writer reported a '
                          'failure: is the format or the disk right?)')
    return osp.abspath(path)


def atomic_write_text(path: str, text: str,
                      inputs: Iterable[Optional[str]] = (),
                      what: str = 'output') -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_output`.

    Args:
        path: The final file.
        text: The contents, written as they are (line ends kept; an empty
            text is allowed).
        inputs / what: As in :func:`check_output_path`.
    """
    with atomic_output(path, inputs, what, allow_empty=True) as tmp:
        # newline='': the text's own line ends (a CSV's \r\n) are kept
        with open(tmp, 'w', encoding='utf-8', newline='') as f:
            f.write(text)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: str) -> None:
    """Persist a rename in ``folder`` (where the platform allows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def json_safe(obj):
    """``obj`` as plain JSON values: NaN / infinite floats as ``None``
    (``null``: JSON has no NaN, and strict parsers such as JavaScript's
    ``JSON.parse`` reject the bare ``NaN`` Python writes by default), numpy
    scalars and arrays as Python numbers and lists, tuples as lists.

    Args:
        obj: A value made of dicts, lists, tuples, numbers (Python or
            numpy), numpy arrays, strings, ``None``; converted recursively,
            other objects returned as they are.
    """
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        obj = float(obj)
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dump_json(payload, path: str, inputs: Iterable[Optional[str]] = (),
              what: str = 'output') -> None:
    """Write ``payload`` as strict JSON (undefined metrics as ``null``),
    atomically.

    Args:
        payload: The value written, converted by :func:`json_safe`;
            indented by 2.
        path: The final file.
        inputs / what: As in :func:`check_output_path`.
    """
    atomic_write_text(path, json.dumps(json_safe(payload), indent=2,
                                       allow_nan=False),
                      inputs, what)


def dump_text(text: str, path: str, inputs: Iterable[Optional[str]] = (),
              what: str = 'output') -> None:
    """Write ``text`` to ``path`` atomically (a temporary file, then
    ``os.replace``).

    Args:
        text: The contents (UTF-8).
        path: The final file.
        inputs / what: As in :func:`check_output_path`.
    """
    atomic_write_text(path, text, inputs, what)


def load_json(path: str, what: str = 'file'):
    """Read a JSON file the package (or a user) wrote, with named errors.

    Args:
        path: The JSON file.
        what: How messages name the file (e.g. ``'calibration file'``).

    Returns:
        The parsed value (``NaN`` / ``Infinity`` tokens are accepted).

    Raises:
        MissingInputError: ``path`` does not exist (``FileNotFoundError``).
        DamagedFileError: it is a folder, not UTF-8, or not JSON
            (truncated, edited by hand); the message names the file, and
            the line and column where parsing stopped.
    """
    path = os.fspath(path)
    if not osp.exists(path):
        raise MissingInputError(f'{what} {path} not found')
    if osp.isdir(path):
        raise DamagedFileError(f'{what} {path} is a folder, not a file')
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except UnicodeDecodeError as e:
        raise DamagedFileError(
            f'{what} {path} is not UTF-8 text (byte {e.start}): is it the '
            'right file?') from None
    except json.JSONDecodeError as e:
        raise DamagedFileError(
            f'{what} {path} is not valid JSON ({e.msg} at line {e.lineno}, '
            f'column {e.colno}): truncated or edited? Write it again with '
            'the tool that made it') from None
    except RecursionError:
        raise DamagedFileError(f'{what} {path} is nested too deeply to be '
                               'a file the package wrote') from None


def check_schema_version(payload, path: str, kind: str, current: int,
                         oldest: int = 0) -> int:
    """The ``schema_version`` of a loaded JSON file, checked.

    A file without the field is version 0 (written before versions were
    recorded).

    Args:
        payload: The loaded JSON value (must be an object).
        path: The file it was read from, for messages.
        kind: The file type in messages (``'results file'``).
        current: The newest version this mmseg_ood reads (the one it
            writes).
        oldest: The oldest version still read.

    Returns:
        int: The file's version, in ``[oldest, current]``.

    Raises:
        DamagedFileError: not a JSON object, a version that is not an int,
            or one outside ``[oldest, current]`` (a newer mmseg_ood wrote
            it, or a version no longer read).
    """
    if not isinstance(payload, dict):
        raise DamagedFileError(f'{kind} {path}: expected a JSON object, got '
                               f'{type(payload).__name__}')
    version = payload.get('schema_version', 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise DamagedFileError(f'{kind} {path}: schema_version must be an '
                               f'int, got {version!r}')
    if version > current:
        raise DamagedFileError(
            f'{kind} {path} has schema version {version}, newer than this '
            f'mmseg_ood reads ({current}): upgrade mmseg_ood')
    if version < oldest:
        raise DamagedFileError(
            f'{kind} {path} has schema version {version}, which this '
            f'mmseg_ood no longer reads (oldest {oldest}): write it again '
            'with the tool that made it')
    return version


_TYPE_NAMES = {dict: 'an object', list: 'a list', str: 'a string',
               int: 'an int', float: 'a number', bool: 'true or false',
               type(None): 'null'}


def expect_field(mapping, key: str, types, where: str, default=...):
    """``mapping[key]``, checked to be of ``types``, for readers of JSON
    files: a missing field or one of the wrong type is a
    :class:`~mmseg_ood.errors.DamagedFileError` naming ``where`` (e.g.
    ``'calibration file x.json'``) and the field, never a bare
    ``KeyError`` / ``TypeError`` later. ``int`` is accepted where
    ``float`` is asked for; ``bool`` never counts as a number. A missing
    field gives ``default`` when one is given.

    Args:
        mapping: The JSON object read (anything else is refused).
        key: The field's name.
        types: A type or a tuple of types the value must have (``dict``,
            ``list``, ``str``, ``int``, ``float``, ``bool``,
            ``type(None)``).
        where: The file (and place in it), for the message.
        default: Returned when the field is missing; default: no default
            (a missing field is an error).

    Raises:
        DamagedFileError: not an object, a missing field without default,
            or a value of the wrong type.
    """
    if not isinstance(mapping, dict):
        raise DamagedFileError(f'{where}: expected an object holding '
                               f'{key!r}, got {type(mapping).__name__}')
    if key not in mapping:
        if default is not ...:
            return default
        raise DamagedFileError(f'{where}: the field {key!r} is missing')
    value = mapping[key]
    types = types if isinstance(types, tuple) else (types, )
    if float in types and int not in types:
        types = types + (int, )
    ok = isinstance(value, types) and not (
        isinstance(value, bool) and bool not in types)
    if not ok:
        wanted = ' or '.join(_TYPE_NAMES.get(t, t.__name__) for t in types
                             if not (t is int and float in types))
        raise DamagedFileError(
            f'{where}: the field {key!r} must be {wanted}, got '
            f'{type(value).__name__} {_short(value)}')
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'
