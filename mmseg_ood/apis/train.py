"""Train any mmseg config with the Runner, as mmseg's ``tools/train.py``
does, plus safe checkpoint loading and readable unknown-type errors."""
from __future__ import annotations

import logging
from typing import Optional

from mmengine.logging import print_log
from mmengine.runner import Runner

from mmseg.registry import RUNNERS

from ..utils import explain_unknown_types, load_config, safe_checkpoint_loading


def build_runner(cfg) -> Runner:
    """Build the Runner (or ``cfg.runner_type`` from mmseg's RUNNERS)."""
    with explain_unknown_types():
        if 'runner_type' in cfg:
            return RUNNERS.build(cfg)
        return Runner.from_cfg(cfg)


def enable_amp(cfg) -> None:
    """Switch ``cfg.optim_wrapper`` to ``AmpOptimWrapper`` (dynamic scale)."""
    wrapper = cfg.optim_wrapper.type
    if wrapper == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.',
                  logger='current', level=logging.WARNING)
        return
    if wrapper != 'OptimWrapper':
        raise ValueError('`--amp` needs optim_wrapper.type == '
                         f"'OptimWrapper' in the config, got {wrapper!r}")
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


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
        enable_amp(cfg)
    cfg.resume = resume
    runner = build_runner(cfg)
    with safe_checkpoint_loading(unsafe_load), explain_unknown_types():
        runner.train()
    return runner
