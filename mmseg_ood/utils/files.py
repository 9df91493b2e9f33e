"""Atomic file writes, and strict JSON (no NaN) written atomically."""
import json
import math
import os
import os.path as osp
import tempfile


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file of its own
    beside it (``tempfile.mkstemp``, mode per the umask), then
    ``os.replace``; nothing is left behind when writing fails."""
    # a temporary name of its own: two writers of one path (two processes,
    # a rerun beside a running job) never replace each other's half file
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(osp.abspath(path)),
                               prefix=osp.basename(path) + '.',
                               suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def json_safe(obj):
    """``obj`` with every NaN / infinite float replaced by ``None``
    (``null``): JSON has no NaN, and strict parsers (JavaScript's
    ``JSON.parse``) reject the bare ``NaN`` Python writes by default."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def dump_json(payload, path: str) -> None:
    """Write ``payload`` as strict JSON (undefined metrics as ``null``),
    atomically."""
    atomic_write_text(path, json.dumps(json_safe(payload), indent=2,
                                   allow_nan=False))


def dump_text(text: str, path: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file, then
    ``os.replace``)."""
    atomic_write_text(path, text)
