"""Train any mmseg config with the Runner, as mmseg's ``tools/train.py``
does, plus safe checkpoint loading and readable unknown-type errors."""
from __future__ import annotations

from typing import Optional

from mmengine.runner import Runner

from ..deprecation import package_getattr
from ..engine.runner import build_runner as _build_runner
from ..engine.runner import enable_amp as _enable_amp
from ..utils import explain_unknown_types, load_config, safe_checkpoint_loading

__getattr__ = package_getattr(__name__)  # names moved to lower layers


def train(config: str,
          work_dir: Optional[str] = None,
          resume: bool = False,
          amp: bool = False,
          cfg_options: Optional[dict] = None,
          launcher: str = 'none',
          unsafe_load: bool = False) -> Runner:
    """Train the model of ``config``; return the finished Runner.

    Args:
        config: Path of an mmseg config (``mmseg::`` bases allowed).
        work_dir: Where logs and checkpoints go (default: the config's, else
            ``./work_dirs/<config name>``).
        resume: Resume from the latest checkpoint in ``work_dir``.
        amp: Automatic mixed precision.
        cfg_options: Overrides merged into the config.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        unsafe_load: Load ``load_from`` / resume checkpoints with full pickle.
    """
    cfg = load_config(config, cfg_options, work_dir, launcher)
    if amp:
        _enable_amp(cfg)
    cfg.resume = resume
    runner = _build_runner(cfg)
    with safe_checkpoint_loading(unsafe_load), explain_unknown_types():
        runner.train()
    return runner
