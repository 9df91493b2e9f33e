"""Train any mmseg config with the Runner, as mmseg's ``tools/train.py``
does, plus safe checkpoint loading and readable unknown-type errors."""
from __future__ import annotations

import itertools
import logging
import os.path as osp
from typing import Optional

from mmengine.logging import print_log
from mmengine.runner import Runner

from mmseg.registry import RUNNERS

from ..utils import explain_unknown_types, load_config, safe_checkpoint_loading

_RUNNERS = itertools.count()


def unique_experiment_name(prefix: str) -> str:
    """``<prefix>_<n>``, ``n`` counting the Runners of this process (the
    same on every rank); mmengine appends the time."""
    return f'{prefix}_{next(_RUNNERS)}'


def build_runner(cfg) -> Runner:
    """Build the Runner (or ``cfg.runner_type`` from mmseg's RUNNERS).

    Runners built in one process never share mmengine's logger and
    visualizer instances, which mmengine keys by name: a config without
    ``experiment_name`` gets mmengine's default name (config name and
    time) with a per-process counter before the time, and the fixed
    visualizer ``name`` of mmseg's configs (``'visualizer'``) gets the
    experiment name appended. Otherwise a second Runner in the same
    process (``train`` then ``test`` from a notebook; within a second for
    the logger, at any time for the visualizer) writes its logs into the
    first one's directory.
    """
    if cfg.get('experiment_name') is None:  # mmengine appends the time
        stem = osp.splitext(osp.basename(cfg.filename or 'config'))[0]
        cfg.experiment_name = unique_experiment_name(stem)
    vis = cfg.get('visualizer')
    if isinstance(vis, dict) and vis.get('name'):
        vis['name'] = f"{vis['name']}_{cfg.experiment_name}"
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
