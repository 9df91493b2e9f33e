"""Evaluation passes: the mechanism every OOD tool builds on.

A tool that evaluates a checkpoint does the same few things: load the
config and the checkpoint (safely, checking that they fit), build the model
once, and run mmengine test passes over datasets with OOD scorers attached,
metrics collecting and hooks writing files. :class:`EvaluationSession` does
exactly that and nothing else; the tools (``ood_test``, SML fitting, and
the later meta-classification, robustness and calibration tools) only say
which passes to run and what to do with the results.

Example:
    >>> with EvaluationSession('mmseg_ood::synthetic/'
    ...                        'deeplabv3plus_r18-d8_1xb8-300it_synthetic-'
    ...                        'street-128x256.py', 'iter_300.pth',
    ...                        work_dir='work_dirs/eval') as session:
    ...     ood = session.run_pass(
    ...         load_dataset_preset('synthetic_ood').dataset, name='ood',
    ...         scorers=['msp', 'energy'], ood_labels=True,
    ...         metrics=[dict(type='OODMetric')])
    ...     ood.metric('OODMetric').last_results['energy']['ap']
    ...     session.run_pass(metrics=[dict(type='IoUMetric')]).metrics
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import LOOPS
from mmengine.runner import Runner, TestLoop
from mmengine.runner.checkpoint import load_state_dict

from ..datasets.transforms import with_ood_annotations
from ..errors import MissingFieldError
from ..models import unwrap_segmentor
from ..utils import (check_checkpoint_fits, checkpoint_state_dict,
                     explain_unknown_types, load_checkpoint_file, load_config,
                     safe_checkpoint_loading)
from ..utils.files import check_output_dir
from ..utils.work_dir_lock import work_dir_lock
from .hooks import FiniteLogitsHook, OODScoringHook
from .runner import build_runner, enable_tta, unique_experiment_name

__all__ = ['EvaluationSession', 'PassResult']

HookSpec = Union[dict, Hook]
MetricSpec = Union[dict, BaseMetric]


@dataclass
class PassResult:
    """What one evaluation pass produced.

    Args:
        name: The pass's name.
        metrics: The flat metrics dict of mmengine's test loop (each
            metric's keys, prefixed).
        evaluators: The metric objects, after evaluation (for what they
            keep beyond the flat dict, e.g. ``OODMetric.last_pixel``).
        size: The dataset's length (each rank saw its share of it, plus
            possibly one repeat: see
            :mod:`~mmseg_ood.evaluation.metrics.sampler_padding`).
    """
    name: str
    metrics: Dict[str, Any] = field(default_factory=dict)
    evaluators: List[BaseMetric] = field(default_factory=list)
    size: int = 0

    def metric(self, kind: Union[str, type]) -> BaseMetric:
        """The pass's metric of a class (or class name)."""
        for m in self.evaluators:
            if (isinstance(kind, str) and type(m).__name__ == kind) or (
                    isinstance(kind, type) and isinstance(m, kind)):
                return m
        raise MissingFieldError(
            f'pass {self.name!r} has no {kind} metric; it had '
            f'{[type(m).__name__ for m in self.evaluators]}')


class EvaluationSession:
    """A checkpoint under a config, ready for any number of test passes.

    The config is loaded as mmseg's tools load it (``--cfg-options``,
    launcher, work dir); the Runner and the model are built once, at the
    first pass; the checkpoint is read once (safely, unless
    ``unsafe_load``), checked against the model (names and shapes, with a
    message naming both files), and loaded. Each :meth:`run_pass` then runs
    mmengine's own test loop (the config's ``test_cfg``) over one dataset,
    with the pass's scorers, metrics and hooks; the Runner's hooks and
    logger live for the session (one log directory,
    ``<work_dir>/<timestamp>``).

    Args:
        config: Config file, or ``mmseg_ood::<path>`` for a shipped one.
        checkpoint: Checkpoint file.
        work_dir: Output and log directory (mmseg's priority: argument >
            config > ``./work_dirs/<config name>``).
        cfg_options: Overrides merged into the config.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        unsafe_load: Load the checkpoint with full pickle (trusted files
            only).
        tta: Test-time augmentation with the config's ``tta_pipeline``;
            the model becomes ``OODSegTTAModel``, which merges the score
            maps too.
        tool: Prefix of the experiment name and of progress titles.
        console_level: Log level shown on the console (``'WARNING'``:
            progress bars, warnings and errors, not mmengine's config dump,
            environment and hook tables); the log file (:attr:`log_file`)
            keeps everything. ``None``: the config's ``log_level``.

    The session holds the work dir's lock (``utils.work_dir_lock``) from
    construction to :meth:`close`: a second run on the same folder stops
    with :class:`~mmseg_ood.errors.WorkDirLockedError` naming this one.

    Attributes:
        cfg: The loaded config (with the TTA model and pipeline if ``tta``).
        work_dir: The work directory.
        checkpoint_meta: The checkpoint's ``meta`` dict (``{}`` if none).
        palette: Colours of the model's classes (checkpoint's
            ``dataset_meta``, else the config's test dataset class), or
            ``None``.
    """

    def __init__(self, config: str, checkpoint: str,
                 work_dir: Optional[str] = None,
                 cfg_options: Optional[dict] = None,
                 launcher: str = 'none', unsafe_load: bool = False,
                 tta: bool = False, tool: str = 'eval',
                 console_level: Optional[str] = 'WARNING'):
        self.config, self.checkpoint = config, checkpoint
        self.unsafe_load, self.tool = unsafe_load, tool
        self.console_level = console_level
        self.cfg = load_config(config, cfg_options, work_dir, launcher)
        self.work_dir = self.cfg.work_dir
        check_output_dir(self.work_dir, 'work dir', inputs=(checkpoint, ))
        self._load(checkpoint, unsafe_load, tta)
        # one run per work dir, from here to close()
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(work_dir_lock(self.work_dir, tool))
        self._runner: Optional[Runner] = None

    def _load(self, checkpoint: str, unsafe_load: bool, tta: bool) -> None:
        # mmengine keys its logger and visualizer instances by this name
        self.cfg.experiment_name = unique_experiment_name(self.tool)
        self.cfg.load_from = None  # loaded (once, checked) by this session
        self.cfg.resume = False
        # the passes draw with their own hooks (OODVisualizationHook)
        if self.cfg.get('default_hooks'):
            self.cfg.default_hooks.pop('visualization', None)
        if tta:
            enable_tta(self.cfg)
            self.cfg.model.type = 'OODSegTTAModel'  # merges score maps too
        self._ckpt = load_checkpoint_file(checkpoint, unsafe=unsafe_load)
        meta = self._ckpt.get('meta') if isinstance(self._ckpt, dict) else None
        self.checkpoint_meta = meta if isinstance(meta, dict) else {}
        self.palette = self._palette()

    # set-up ------------------------------------------------------------------
    def dataset_meta(self, key: str):
        """``key`` (``'classes'``, ``'palette'``) of the model's dataset
        meta: the checkpoint's ``dataset_meta``, else the config's test
        dataset class; ``None`` if neither has it."""
        value = (self.checkpoint_meta.get('dataset_meta') or {}).get(key)
        if value is None:
            from mmseg.registry import DATASETS
            dataset = self.cfg.test_dataloader.dataset
            cls = DATASETS.get(dataset.get('type'))
            value = getattr(cls, 'METAINFO', {}).get(key)
        return value

    def _palette(self) -> Optional[list]:
        palette = self.dataset_meta('palette')
        return [list(map(int, c)) for c in palette] if palette else None

    @property
    def runner(self) -> Runner:
        """The session's Runner, built (and the checkpoint loaded) on first
        use."""
        if self._runner is None:
            if self._ckpt is None:
                raise RuntimeError(f'{self!r} is closed; start a new one')
            runner = build_runner(self.cfg, self.console_level)
            runner.call_hook('before_run')
            model = unwrap_segmentor(runner.model)
            check_checkpoint_fits(model, self._ckpt, self.checkpoint,
                                  self.config)
            # as Runner.load_checkpoint does (e.g. EMAHook swaps weights)
            runner.call_hook('after_load_checkpoint', checkpoint=self._ckpt)
            load_state_dict(model, checkpoint_state_dict(self._ckpt),
                            strict=True)
            print_log(f'Loaded checkpoint {self.checkpoint}',
                      logger='current')
            self._ckpt = None  # the model holds the weights now
            self._runner = runner
        return self._runner

    @property
    def log_file(self) -> str:
        """The session's log file (builds the Runner)."""
        runner = self.runner
        return osp.join(runner.log_dir, f'{runner.timestamp}.log')

    @property
    def model(self):
        """The segmentor (inside DDP / TTA wrappers)."""
        return unwrap_segmentor(self.runner.model)

    # passes ------------------------------------------------------------------
    def dataloader_config(self, dataset: Optional[dict] = None,
                          ood_labels: bool = False) -> dict:
        """The dataloader of a pass.

        Args:
            dataset: A dataset config; its ``pipeline`` defaults to the
                model's test (or TTA) pipeline. ``None``: the config's own
                ``test_dataloader`` unchanged.
            ood_labels: Load OOD labels (0 / 1 / 255) with
                ``LoadOODAnnotations``.
        """
        test_loader = self.cfg.test_dataloader
        if dataset is None:
            loader = copy.deepcopy(test_loader)
            if ood_labels:
                loader.dataset.pipeline = with_ood_annotations(
                    loader.dataset.pipeline)
            return loader
        dataset = copy.deepcopy(dict(dataset))
        pipeline = dataset.get('pipeline', test_loader.dataset.pipeline)
        dataset['pipeline'] = with_ood_annotations(pipeline) if ood_labels \
            else list(pipeline)
        return dict(
            batch_size=1,
            num_workers=test_loader.get('num_workers', 2),
            persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dataset)

    def run_pass(self,
                 dataset: Optional[dict] = None,
                 *,
                 name: str = 'test',
                 scorers: Optional[Union[Sequence, dict]] = None,
                 strict: bool = True,
                 metrics: Optional[Sequence[MetricSpec]] = None,
                 hooks: Sequence[HookSpec] = (),
                 ood_labels: bool = False,
                 progress: bool = True) -> PassResult:
        """One mmengine test pass over ``dataset``.

        Args:
            dataset: Dataset config (pipeline defaults to the model's test
                pipeline), or ``None`` for the config's own test set.
            name: Name of the pass (progress title, messages).
            scorers: OOD scorers to attach (names, config dicts, instances,
                or a name -> spec mapping; see
                :class:`~mmseg_ood.models.OODScoring`): every sample then
                carries ``ood_scores``. ``None``: no scoring.
            strict: Raise if a scorer cannot run on this model; else skip
                it with a warning.
            metrics: Metric configs or instances; ``None``: the config's
                ``test_evaluator``; ``[]``: none.
            hooks: Hooks (configs or instances) for this pass only.
            ood_labels: Load OOD labels (see :meth:`dataloader_config`).
            progress: Show a progress bar (rank 0).

        Returns:
            PassResult: the metrics and the metric objects.
        """
        runner = self.runner
        if metrics is None:
            metrics = self.cfg.test_evaluator
        metrics = [metrics] if isinstance(metrics, (dict, BaseMetric)) \
            else list(metrics)
        pass_hooks: List[HookSpec] = [FiniteLogitsHook()]
        if scorers is not None:
            # an instance: scorer objects (fitted statistics, recorders)
            # must not go through the config copies of HOOKS.build
            pass_hooks.append(OODScoringHook(scorers=scorers, strict=strict))
        if progress:
            pass_hooks.append(dict(type='ProgressBarHook',
                                   title=f'[{self.tool}] {name}'))
        pass_hooks += list(hooks)
        loader = self.dataloader_config(dataset, ood_labels)
        loop_cfg = copy.deepcopy(dict(self.cfg.get('test_cfg') or {}))
        registered: List[Hook] = []
        try:
            with explain_unknown_types():
                # as Runner.build_test_loop, with this pass's data, metrics
                args = dict(runner=runner, dataloader=loader,
                            evaluator=metrics)
                loop = LOOPS.build(loop_cfg, default_args=args) \
                    if 'type' in loop_cfg else TestLoop(**loop_cfg, **args)
                for spec in pass_hooks:
                    before = list(runner.hooks)
                    runner.register_hook(spec)
                    registered += [h for h in runner.hooks
                                   if h not in before]
            # hooks read the current loop through runner.test_loop /
            # runner.test_dataloader: mmengine keeps it in `_test_loop`
            runner._test_loop = loop
            with safe_checkpoint_loading(self.unsafe_load), \
                    explain_unknown_types():
                results = loop.run()
        finally:
            for hook in registered:  # the session's hooks stay as they were
                runner.hooks.remove(hook)
        return PassResult(name=name, metrics=dict(results),
                          evaluators=list(loop.evaluator.metrics),
                          size=len(loop.dataloader.dataset))

    # end ---------------------------------------------------------------------
    def close(self) -> None:
        """End the session (the Runner's ``after_run`` hooks: log upload,
        visualizer close)."""
        if self._runner is not None:
            try:
                self._runner.call_hook('after_run')
            finally:
                # mmengine keeps logger instances (and the last one as the
                # "current" logger) for the process's life: let go of the
                # log file, so that later messages do not land in it
                logger = self._runner.logger
                for h in [h for h in logger.handlers
                          if isinstance(h, logging.FileHandler)]:
                    logger.removeHandler(h)
                    h.close()
                self._runner = None
        self._ckpt = None
        self._lock.close()

    def __enter__(self) -> 'EvaluationSession':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f'EvaluationSession(config={self.config!r}, '
                f'checkpoint={self.checkpoint!r}, work_dir={self.work_dir!r})')

