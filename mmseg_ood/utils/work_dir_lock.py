"""One run per work directory: a lock file naming its holder.

Two runs writing results into one work directory would replace each
other's figures and partial results. A tool that writes results takes
``<work_dir>/.mmseg_ood.lock`` first: the file is created exclusively
(``O_CREAT | O_EXCL``) and holds the holder's pid, host, tool and start
time as JSON. A second run stops at once with a message naming the holder
and the file. A lock whose holder is gone (same host, no such process) is
stale: it is taken over, with a log line saying so. A lock from another
host is never taken over (its process cannot be checked from here); the
message says to remove the file if that run is over.

In a distributed run only rank 0 takes the lock (the ranks of one run
share its work directory). Taking the lock again in the same process (a
tool whose passes open several sessions on one folder) is a no-op.
"""
import contextlib
import json
import logging
import os
import os.path as osp
import socket
import time
from typing import Dict, Iterator

from mmengine.logging import print_log

from mmseg_ood.errors import WorkDirLockedError

__all__ = ['LOCK_NAME', 'work_dir_lock', 'read_lock']

LOCK_NAME = '.mmseg_ood.lock'

#: Locks this process holds: real path -> nesting depth.
_HELD: Dict[str, int] = {}


def _is_rank_zero() -> bool:
    return os.environ.get('RANK', '0') in ('', '0')


def read_lock(path: str) -> dict:
    """The holder recorded in a lock file (``{}`` if unreadable).

    Args:
        path: The lock file (JSON: ``pid``, ``host``, ``tool``,
            ``started``).

    Returns:
        dict: The recorded fields; ``{}`` if the file is missing, not
        JSON or not an object.
    """
    try:
        with open(path, encoding='utf-8') as f:
            info = json.load(f)
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder_text(info: dict) -> str:
    if not info:
        return 'an unknown process'
    started = info.get('started')
    when = (time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))
            if isinstance(started, (int, float)) else '?')
    return (f'{info.get("tool", "a tool")} (pid {info.get("pid", "?")} on '
            f'{info.get("host", "?")}, started {when})')


def _try_create(path: str, tool: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        json.dump(dict(pid=os.getpid(), host=socket.gethostname(),
                       tool=tool, started=time.time()), f)
    return True


@contextlib.contextmanager
def work_dir_lock(work_dir: str, tool: str) -> Iterator[None]:
    """Hold ``work_dir``'s lock for the block (creating the folder).

    Args:
        work_dir: The run's output folder.
        tool: The tool's name, recorded for whoever finds the lock.

    Raises:
        WorkDirLockedError: A live run (or one on another host) holds it.
    """
    if not _is_rank_zero():
        yield
        return
    os.makedirs(work_dir, exist_ok=True)
    key = osp.realpath(work_dir)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    path = osp.join(work_dir, LOCK_NAME)
    for _ in range(3):  # a race with another run taking over the same lock
        if _try_create(path, tool):
            break
        info = read_lock(path)
        same_host = info.get('host') == socket.gethostname()
        pid = info.get('pid')
        if info and same_host and isinstance(pid, int) and not _alive(pid):
            print_log(f'{work_dir}: taking over the stale lock of '
                      f'{_holder_text(info)}, which is no longer running',
                      logger='current', level=logging.WARNING)
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        if not info and time.time() - _mtime(path) > 60:
            # unreadable and old: a holder killed while writing it
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        raise WorkDirLockedError(
            f'work dir {work_dir} is in use by {_holder_text(info)}: wait '
            'for it to finish or choose another --work-dir (if that run is '
            f'over, remove {path})')
    else:
        raise WorkDirLockedError(f'could not take the lock {path}: another '
                                 'run keeps taking it')
    _HELD[key] = 1
    try:
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(FileNotFoundError):
            if read_lock(path).get('pid') == os.getpid():
                os.remove(path)


def _mtime(path: str) -> float:
    try:
        return osp.getmtime(path)
    except OSError:
        return time.time()
