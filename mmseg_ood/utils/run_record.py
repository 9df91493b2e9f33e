"""What a rerun needs to reproduce a results file: seeds, threads,
deterministic flags, software versions and the commit.

Every results file the tools write carries this record under ``"run"``
(:func:`run_record`). Two runs give the same numbers to the last digit only
when all of it matches *and* the machine type is the same: the CPU
convolutions round differently with another thread count or instruction
set, and training amplifies such differences
(``docs/en/user_guides/own_project.md``, "Reproducing a number").
"""
import os
import os.path as osp
import platform
import subprocess
import sys
from typing import Optional

import torch

from ..version import __version__

RUN_RECORD_SCHEMA = 1

# the libraries whose versions change numbers
_LIBRARIES = ('torch', 'mmcv', 'mmengine', 'mmseg', 'numpy', 'scipy',
              'sklearn')


def _version(module: str) -> Optional[str]:
    """``module.__version__`` if the module is installed, else ``None``."""
    try:
        mod = __import__(module)
    except Exception:  # not installed, or broken: say so, do not fail
        return None
    return str(getattr(mod, '__version__', None))


def source_commit(path: Optional[str] = None) -> dict:
    """The git commit of the checkout ``path`` (default: the one holding
    this package) and whether its tracked files differ from it.

    Returns ``dict(commit=None, dirty=None)`` outside a git checkout (an
    installed wheel: its ``mmseg_ood`` version then identifies it).

    Args:
        path: A folder inside a git checkout; default: the checkout that
            holds this package.

    Returns:
        dict: ``commit`` (the 40-digit hash or ``None``) and ``dirty``
        (whether tracked files differ from it; ``None`` if unknown).
    """
    root = path or osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__))))
    try:
        commit = subprocess.run(
            ['git', '-C', root, 'rev-parse', 'HEAD'], capture_output=True,
            text=True, timeout=10)
        if commit.returncode != 0:
            return dict(commit=None, dirty=None)
        status = subprocess.run(
            ['git', '-C', root, 'status', '--porcelain',
             '--untracked-files=no'], capture_output=True, text=True,
            timeout=10)
    except (OSError, subprocess.SubprocessError):  # no git
        return dict(commit=None, dirty=None)
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return dict(commit=commit.stdout.strip(), dirty=dirty)


def run_record(cfg=None, checkpoint_meta: Optional[dict] = None) -> dict:
    """The settings a rerun needs, as plain JSON values.

    Args:
        cfg: The run's mmengine ``Config``: its ``randomness`` (seed,
            deterministic) is recorded.
        checkpoint_meta: The evaluated checkpoint's ``meta``: the seed it
            was trained with (mmengine's Runner stores it) and the
            mmengine version that wrote it.

    Returns:
        ``dict(schema, seed, deterministic, threads, versions, commit,
        dirty, machine)``: ``threads`` holds torch's intra-op thread count
        and the ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` variables;
        ``deterministic`` the config's flag and torch's / cuDNN's;
        ``machine`` the platform and CPU (or GPU) the numbers came from.
    """
    randomness = dict(cfg.get('randomness') or {}) if cfg is not None \
        else {}
    meta = checkpoint_meta or {}
    versions = {name: _version(name) for name in _LIBRARIES}
    versions['python'] = platform.python_version()
    versions['mmseg_ood'] = __version__
    cuda = torch.cuda.is_available()
    record = dict(
        schema=RUN_RECORD_SCHEMA,
        seed=dict(run=randomness.get('seed'),
                  checkpoint_training=meta.get('seed')),
        deterministic=dict(
            config=randomness.get('deterministic', False),
            torch_algorithms=torch.are_deterministic_algorithms_enabled(),
            cudnn_deterministic=bool(torch.backends.cudnn.deterministic),
            cudnn_benchmark=bool(torch.backends.cudnn.benchmark)),
        threads=dict(torch=torch.get_num_threads(),
                     OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS'),
                     MKL_NUM_THREADS=os.environ.get('MKL_NUM_THREADS')),
        versions=versions,
        checkpoint_mmengine=meta.get('mmengine_version'),
        machine=dict(system=platform.system(), arch=platform.machine(),
                     cpu=platform.processor() or None,
                     cpus=os.cpu_count(),
                     device=(torch.cuda.get_device_name(0) if cuda
                             else 'cpu')),
        argv=list(sys.argv),
    )
    record.update(source_commit())
    return record
