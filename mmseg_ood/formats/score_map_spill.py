"""A rank's score maps on disk, for a second pass at a threshold known
only after the first (component metrics at the best pixel-F1 threshold).

Each :class:`ScoreMapSpill` writes to its own directory
``<parent>/mmseg_ood_spill_<host>_<pid>_<random>``. The directory goes away
on :meth:`~ScoreMapSpill.close`, when the object is garbage-collected and
at interpreter exit (also after an exception or Ctrl-C); only a killed
process leaves it behind, and :func:`remove_stale_spills` (called for every
new spill) removes the directories of processes of this host that are gone.
"""
from __future__ import annotations

import os
import os.path as osp
import shutil
import socket
import tempfile
import weakref
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

__all__ = ['ScoreMapSpill', 'remove_stale_spills', 'SPILL_PREFIX']

SPILL_PREFIX = 'mmseg_ood_spill_'


def _host() -> str:
    return socket.gethostname().replace('_', '-') or 'host'


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_spills(parent: str) -> List[str]:
    """Remove the spill directories in ``parent`` whose process (on this
    host) no longer runs; return their paths.

    Args:
        parent: The directory spills are made under; a missing directory
            removes nothing. Spills of other hosts (a shared file system)
            and of running processes are left alone.

    Returns:
        list: The paths of the removed directories.
    """
    removed = []
    if not osp.isdir(parent):
        return removed
    host = _host()
    for name in os.listdir(parent):
        if not name.startswith(SPILL_PREFIX):
            continue
        parts = name[len(SPILL_PREFIX):].split('_')
        if len(parts) < 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if not _alive(int(parts[1])):
            shutil.rmtree(osp.join(parent, name), ignore_errors=True)
            removed.append(osp.join(parent, name))
    return removed


class ScoreMapSpill:
    """Append-only records of one image's labels and score maps.

    Args:
        parent: Directory to spill under (created if needed); ``None``: the
            system's temporary directory.
    """

    def __init__(self, parent: Optional[str] = None):
        parent = parent or tempfile.gettempdir()
        os.makedirs(parent, exist_ok=True)
        remove_stale_spills(parent)
        self.dir = tempfile.mkdtemp(
            prefix=f'{SPILL_PREFIX}{_host()}_{os.getpid()}_', dir=parent)
        self._file = osp.join(self.dir, 'maps.npy')
        self._records: List[Tuple[int, Tuple[str, ...]]] = []
        self._tags: List[Optional[str]] = []
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.dir,
                                           ignore_errors=True)

    def append(self, key: int, labels: np.ndarray,
               maps: Dict[str, np.ndarray], tag: Optional[str] = None) -> None:
        """Add one image: its 0 / 1 / void ``labels`` (uint8) and float32
        ``maps`` by scorer, under ``key`` (e.g. the sample number), with an
        optional ``tag`` (e.g. the image path)."""
        with open(self._file, 'ab') as f:
            np.save(f, labels)
            for m in maps.values():
                np.save(f, np.ascontiguousarray(m, dtype=np.float32))
        self._records.append((key, tuple(maps)))
        self._tags.append(tag)

    def drop(self, key: int) -> None:
        """Leave the records under ``key`` out of :meth:`read` (they stay in
        the file, skipped)."""
        self._records = [(k, n) if k != key else (None, n)
                         for k, n in self._records]

    def read(self) -> Iterator[Tuple[np.ndarray, Dict[str, np.ndarray]]]:
        """``(labels, maps by scorer)`` of each record, in order."""
        for _, labels, maps in self.read_tagged():
            yield labels, maps

    def read_tagged(self) -> Iterator[Tuple[Optional[str], np.ndarray,
                                            Dict[str, np.ndarray]]]:
        """``(tag, labels, maps by scorer)`` of each record, in order."""
        if not self._records:
            return
        with open(self._file, 'rb') as f:
            for (key, names), tag in zip(self._records, self._tags):
                labels = np.load(f)
                maps = {n: np.load(f) for n in names}
                if key is not None:
                    yield tag, labels, maps

    def __len__(self) -> int:
        return sum(k is not None for k, _ in self._records)

    def close(self) -> None:
        """Delete the directory (idempotent)."""
        self._finalizer()
