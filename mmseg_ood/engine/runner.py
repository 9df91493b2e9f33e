"""Build the Runner the way mmseg's tools do, and the config switches of
its flags (AMP, TTA, visualization); CPU-only distributed runs."""
from __future__ import annotations

import datetime
import itertools
import logging
import os.path as osp
import sys
from contextlib import contextmanager
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.logging import MMLogger, print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

from ..errors import InvalidValueError
from ..utils import explain_unknown_types
from ..utils.extras import check_config_extras

_RUNNERS = itertools.count()


def unique_experiment_name(prefix: str) -> str:
    """``<prefix>_<n>``, ``n`` counting the Runners of this process (the
    same on every rank); mmengine appends the time.

    Args:
        prefix: The name's stem, usually the config file's name without
            extension.
    """
    return f'{prefix}_{next(_RUNNERS)}'


def _replace_sync_bn(node) -> int:
    """``SyncBN`` -> ``BN`` in a config tree, in place; how many."""
    n = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            n += 1
        for v in node.values():
            n += _replace_sync_bn(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            n += _replace_sync_bn(v)
    return n


def init_cpu_distributed(cfg) -> None:
    """Make ``launcher='pytorch'`` work on a CPU-only torch (gloo).

    mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``,
    which a CPU build of torch does not have, and wraps the model in DDP
    with ``device_ids=[LOCAL_RANK]``, which CPU modules refuse. Without
    CUDA, this initializes the process group with gloo from torchrun's
    environment (the Runner then skips its own initialization), wraps the
    model with ``device_ids=None`` and builds ``SyncBN`` layers as ``BN``
    (``SyncBatchNorm`` trains on GPUs only: each process keeps its own
    batch statistics, as in a one-process run). With CUDA, or another
    launcher, nothing changes: mmengine's own set-up (NCCL) runs.

    Args:
        cfg: The loaded config (``mmengine.Config``), changed in place
            (``model_wrapper_cfg``, ``SyncBN`` in ``model``).
    """
    if cfg.get('launcher') != 'pytorch' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        timeout = (cfg.get('env_cfg') or {}).get('dist_cfg', {}).get(
            'timeout')
        kwargs = {} if timeout is None else dict(
            timeout=datetime.timedelta(seconds=timeout))
        dist.init_process_group(backend='gloo', **kwargs)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    if _replace_sync_bn(cfg.model):
        print_log('CPU distributed run (gloo): SyncBN layers are built as BN',
                  logger='current', level=logging.WARNING)


class _ConsoleGate:
    """A stand-in for ``sys.stdout`` while a Runner is built: mmengine's
    console handler binds to it (and writes through it afterwards, to the
    real ``sys.stdout`` of the moment); what is printed while it is closed
    reaches only the log file."""

    def __init__(self):
        self.open = False

    def _target(self):
        return sys.stdout if sys.stdout is not self else sys.__stdout__

    def write(self, text: str) -> int:
        return self._target().write(text) if self.open else len(text)

    def flush(self) -> None:
        if self.open:
            self._target().flush()

    def isatty(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        # file-like to the end: mmengine's MLflowVisBackend reopens the
        # handlers whose stream is closed
        return False


@contextmanager
def _console_at(level: Optional[str]):
    """Build a Runner whose console shows only ``level`` and above (all of
    it still goes to the log file); ``None``: as configured."""
    if level is None:
        yield
        return
    gate, real = _ConsoleGate(), sys.stdout
    sys.stdout = gate
    try:
        yield
    finally:
        sys.stdout = real
        for logger in MMLogger._instance_dict.values():
            for h in logger.handlers:
                if getattr(h, 'stream', None) is gate:
                    h.setLevel(max(h.level, logging._nameToLevel[level]))
        gate.open = True


def build_runner(cfg, console_level: Optional[str] = None) -> Runner:
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

    ``launcher='pytorch'`` also runs on a CPU-only torch
    (:func:`init_cpu_distributed`); runs log with
    :class:`~mmseg_ood.engine.RankZeroLoggerHook` (one writer of the test
    metrics file, plain numbers in it).

    Args:
        cfg: The config.
        console_level: Show only this level and above on the console
            (e.g. ``'WARNING'``: no config dump, environment or hook
            tables); the log file keeps everything. ``None``: as the
            config's ``log_level``.
    """
    check_config_extras(cfg.get('model'), 'the config\'s model')
    init_cpu_distributed(cfg)
    logger = (cfg.get('default_hooks') or {}).get('logger')
    if isinstance(logger, dict) and \
            logger.get('type') in ('LoggerHook', 'mmengine.LoggerHook'):
        # every rank would write the test metrics JSON, to the same file,
        # and numpy counts as null
        logger['type'] = 'RankZeroLoggerHook'
    if cfg.get('experiment_name') is None:  # mmengine appends the time
        stem = osp.splitext(osp.basename(cfg.filename or 'config'))[0]
        cfg.experiment_name = unique_experiment_name(stem)
    vis = cfg.get('visualizer')
    if isinstance(vis, dict) and vis.get('name'):
        vis['name'] = f"{vis['name']}_{cfg.experiment_name}"
    with explain_unknown_types(), _console_at(console_level):
        if 'runner_type' in cfg:
            return RUNNERS.build(cfg)
        return Runner.from_cfg(cfg)


def enable_amp(cfg) -> None:
    """Switch ``cfg.optim_wrapper`` to ``AmpOptimWrapper`` (dynamic scale).

    Args:
        cfg: The loaded config, changed in place; its ``optim_wrapper.type``
            must be ``'OptimWrapper'`` (or already ``'AmpOptimWrapper'``:
            then a warning, nothing changes).

    Raises:
        InvalidValueError: another optimizer wrapper type.
    """
    wrapper = cfg.optim_wrapper.type
    if wrapper == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.',
                  logger='current', level=logging.WARNING)
        return
    if wrapper != 'OptimWrapper':
        raise InvalidValueError(
            '`--amp` needs optim_wrapper.type == '
            f"'OptimWrapper' in the config, got {wrapper!r}")
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def enable_visualization(cfg, show: bool = False,
                         show_dir: Optional[str] = None,
                         wait_time: float = 2) -> None:
    """Make the ``visualization`` hook draw (and save to ``show_dir``).

    A relative ``show_dir`` is taken under ``cfg.work_dir`` (mmseg documents
    this but mmengine resolves it against the current directory).

    Args:
        cfg: The loaded config, changed in place; it needs
            ``default_hooks.visualization``.
        show: Also show each image in a window (``--show``).
        show_dir: Folder the drawn images are saved to (``--show-dir``),
            relative to ``cfg.work_dir``; default: not saved.
        wait_time: Seconds each shown image stays up (with ``show``).

    Raises:
        InvalidValueError: the config has no visualization hook.
    """
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise InvalidValueError(
            '`--show` / `--show-dir` need default_hooks.visualization in the '
            "config, e.g. visualization=dict(type='SegVisualizationHook')")
    hooks.visualization['draw'] = True
    if show:
        hooks.visualization['show'] = True
        hooks.visualization['wait_time'] = wait_time
    if show_dir:
        cfg.visualizer['save_dir'] = osp.join(cfg.work_dir, show_dir)


def enable_tta(cfg) -> None:
    """Test with ``cfg.tta_pipeline`` and ``cfg.tta_model`` (mmseg's TTA).

    Args:
        cfg: The loaded config, changed in place: the test dataset's
            pipeline becomes ``tta_pipeline`` and the model is wrapped in
            ``tta_model``.

    Raises:
        InvalidValueError: the config lacks ``tta_pipeline`` or
            ``tta_model``.
    """
    for key in ('tta_pipeline', 'tta_model'):
        if key not in cfg:
            raise InvalidValueError(f'`--tta` needs `{key}` in the config')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
