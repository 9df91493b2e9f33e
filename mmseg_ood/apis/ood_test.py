"""Score a checkpoint on OOD datasets with every scorer in one pass.

The logic behind ``tools/ood_test.py``: for each dataset, an mmengine
Runner test loop with :class:`~mmseg_ood.engine.OODScoringHook` (one
forward pass per image, all scorers), :class:`~mmseg_ood.evaluation.OODMetric`
(pixel and component metrics, distributed-safe), a progress bar, heatmaps
and the SMIYC export; then tables, curves and ``results.json``.
"""
from __future__ import annotations

import copy
import datetime
import itertools
import json
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.config import Config
from mmengine.dist import get_rank

from ..utils import (explain_unknown_types, load_checkpoint_file,
                     load_config, safe_checkpoint_loading)
from .test import enable_tta
from .train import build_runner

DEFAULT_SCORERS = ('msp', 'entropy', 'max_logit', 'energy', 'norm',
                   'n_max_logit', 'n_energy', 'background')
PRESET_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), 'configs', '_base_', 'datasets', 'ood')
#: SMIYC's component size filters and export names per preset.
SMIYC_NAMES = {
    'road_anomaly21': ('anomaly_track', 'AnomalyTrack-all'),
    'road_obstacle21': ('obstacle_track', 'ObstacleTrack-all'),
    'lost_and_found': ('obstacle_track', 'LostAndFound-test'),
    'fs_lost_and_found': ('obstacle_track', 'LostAndFound-test'),
    # small synthetic images (128x256): the small-object size filters
    'synthetic_ood': ('obstacle_track', 'synthetic_ood'),
    'synthetic_objects_ood': ('obstacle_track', 'synthetic_objects_ood'),
}
TUNE_GRID = dict(eta=(0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
                 delta=(0.0, 0.25, 0.5, 0.75, 1.0),
                 temperature=(0.5, 1.0, 2.0, 5.0))


def available_presets() -> List[str]:
    if not osp.isdir(PRESET_DIR):
        return []
    return sorted(f[:-3] for f in os.listdir(PRESET_DIR) if f.endswith('.py'))


def resolve_dataset(spec: str) -> tuple:
    """``(name, dataset config)`` from a preset name or a preset file path
    (a config defining ``ood_dataset``)."""
    path = spec if spec.endswith('.py') else osp.join(PRESET_DIR,
                                                      f'{spec}.py')
    if not osp.isfile(path):
        raise ValueError(f'unknown dataset {spec!r}: not a preset (available: '
                         f'{", ".join(available_presets())}) nor a config '
                         'file defining `ood_dataset`')
    cfg = Config.fromfile(path)
    if 'ood_dataset' not in cfg:
        raise ValueError(f'{path}: a dataset preset must define '
                         '`ood_dataset = dict(type=..., data_root=...)`')
    name = osp.splitext(osp.basename(path))[0]
    return name, cfg.ood_dataset.to_dict()


def ood_pipeline(pipeline):
    """The model's test (or TTA) pipeline with ``LoadAnnotations`` replaced
    by ``LoadOODAnnotations``."""
    def swap(t):
        if isinstance(t, dict):
            t = dict(t)
            if t.get('type') == 'LoadAnnotations':
                t['type'] = 'LoadOODAnnotations'
            if 'transforms' in t:
                t['transforms'] = swap(t['transforms'])
            return t
        if isinstance(t, (list, tuple)):
            return [swap(x) for x in t]
        return t
    out = swap(copy.deepcopy(list(pipeline)))
    if 'LoadOODAnnotations' not in json.dumps(out, default=str):
        out.append(dict(type='LoadOODAnnotations'))
    return out


def check_checkpoint_matches(cfg, ckpt: dict, checkpoint: str,
                             config_path: str) -> None:
    """Raise ``ValueError`` naming config and checkpoint if their parameter
    names or shapes differ (e.g. another number of classes).

    Args:
        cfg: The loaded config.
        ckpt: The loaded checkpoint (a dict, with or without ``state_dict``).
        checkpoint / config_path: File names for the message.
    """
    from mmengine.registry import init_default_scope

    from mmseg.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('pretrained', None)
    with explain_unknown_types():
        model = MODELS.build(model_cfg)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    theirs = {k.replace('module.', '', 1) if k.startswith('module.') else k:
              tuple(v.shape) for k, v in state.items() if hasattr(v, 'shape')}
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    shapes = sorted(k for k in set(own) & set(theirs) if own[k] != theirs[k])
    if not (missing or unexpected or shapes):
        return
    lines = [f'checkpoint {checkpoint} does not fit config {config_path}:']
    if shapes:
        lines += [f'  {k}: checkpoint {theirs[k]}, config {own[k]}'
                  for k in shapes[:10]]
        if any('conv_seg' in k for k in shapes):
            lines.append('  (the number of classes differs: set '
                         'num_classes in the config to match the checkpoint)')
    if missing:
        lines.append(f'  {len(missing)} parameters missing from the '
                     f'checkpoint, e.g. {missing[:5]}')
    if unexpected:
        lines.append(f'  {len(unexpected)} unexpected parameters in the '
                     f'checkpoint, e.g. {unexpected[:5]}')
    raise ValueError('\n'.join(lines))


def tuning_scorers() -> Dict[str, dict]:
    """The grid of norm-decoupled scorers evaluated in the tuning pass."""
    grid = {}
    for eta, delta, t in itertools.product(TUNE_GRID['eta'],
                                           TUNE_GRID['delta'],
                                           TUNE_GRID['temperature']):
        grid[f'n_energy[eta={eta:g},delta={delta:g},T={t:g}]'] = dict(
            type='n_energy', eta=eta, delta=delta, temperature=t)
    for eta, delta in itertools.product(TUNE_GRID['eta'], TUNE_GRID['delta']):
        grid[f'n_max_logit[eta={eta:g},delta={delta:g}]'] = dict(
            type='n_max_logit', eta=eta, delta=delta)
    for t in TUNE_GRID['temperature']:
        grid[f'energy[T={t:g}]'] = dict(type='energy', temperature=t)
    return grid


def restrict_grid(grid: Dict[str, dict], tune: Sequence[str]) -> dict:
    """Keep the grid points that vary only the parameters in ``tune`` (the
    others at their defaults: eta 1, delta 0, temperature 1)."""
    defaults = dict(eta=1.0, delta=0.0, temperature=1.0)
    out = {}
    for name, cfg in grid.items():
        if not any(p in cfg for p in tune):
            continue  # this scorer has none of the tuned parameters
        if all(cfg.get(p, defaults[p]) == defaults[p]
               for p in defaults if p not in tune):
            out[name] = cfg
    return out


def best_of_grid(results: Dict[str, dict], grid: Dict[str, dict]) -> dict:
    """Per scorer type, the grid point with the highest AP."""
    best = {}
    for name, cfg in grid.items():
        ap = results.get(name, {}).get('ap', float('nan'))
        cur = best.get(cfg['type'])
        if ap == ap and (cur is None or ap > cur[1]):
            best[cfg['type']] = (name, ap)
    return {t: dict(point=n, ap=ap, params=grid[n])
            for t, (n, ap) in best.items()}


class OODTester:
    """Runs the passes of ``tools/ood_test.py``; see :func:`ood_test`."""

    def __init__(self, config: str, checkpoint: str, work_dir: str,
                 cfg_options: Optional[dict] = None, launcher: str = 'none',
                 unsafe_load: bool = False, tta: bool = False):
        self.config, self.checkpoint = config, checkpoint
        self.cfg = load_config(config, cfg_options, work_dir, launcher)
        self.work_dir = self.cfg.work_dir
        self.unsafe_load, self.tta = unsafe_load, tta
        self.stamp = datetime.datetime.now().strftime('%Y%m%d_%H%M%S')
        ckpt = load_checkpoint_file(checkpoint, unsafe=unsafe_load)
        check_checkpoint_matches(self.cfg, ckpt, checkpoint, config)
        self.palette = self._id_palette(ckpt)

    def _id_palette(self, ckpt):
        """Colours of the model's (ID) classes: the checkpoint's
        dataset_meta, else the config's test dataset class."""
        meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
        palette = (meta.get('dataset_meta') or {}).get('palette')
        if palette is None:
            from mmseg.registry import DATASETS
            cls = DATASETS.get(self.cfg.test_dataloader.dataset.get('type'))
            palette = getattr(cls, 'METAINFO', {}).get('palette')
        return [list(map(int, c)) for c in palette] if palette else None

    def _pass_cfg(self, tag: str, dataset: dict, scorers, strict: bool,
                  hooks: list, metric: dict):
        cfg = copy.deepcopy(self.cfg)
        cfg.load_from = self.checkpoint
        cfg.experiment_name = f'ood_{tag}_{self.stamp}'
        if self.tta:
            enable_tta(cfg)
            cfg.model.type = 'OODSegTTAModel'  # merges the score maps too
        pipeline = cfg.test_dataloader.dataset.pipeline
        dataset = dict(dataset, pipeline=ood_pipeline(pipeline))
        cfg.test_dataloader = dict(
            batch_size=1, num_workers=cfg.test_dataloader.get(
                'num_workers', 2),
            persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dataset)
        cfg.test_evaluator = metric
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='OODScoringHook', scorers=scorers, strict=strict),
            dict(type='ProgressBarHook', title=f'[ood_test] {tag}')
        ] + hooks
        cfg.default_hooks.pop('visualization', None)
        return cfg

    def run_pass(self, tag, dataset, scorers, strict, hooks=(),
                 metric=None):
        cfg = self._pass_cfg(tag, dataset, scorers, strict, list(hooks),
                             metric or dict(type='OODMetric'))
        runner = build_runner(cfg)
        with safe_checkpoint_loading(self.unsafe_load), \
                explain_unknown_types():
            runner.test()
        return runner.test_evaluator.metrics[0]

    def id_miou(self) -> Optional[float]:
        """mIoU of the config's own (ID) test set, or None if unavailable."""
        cfg = copy.deepcopy(self.cfg)
        cfg.load_from = self.checkpoint
        cfg.experiment_name = f'ood_id_{self.stamp}'
        cfg.default_hooks.pop('visualization', None)
        cfg.test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
        try:
            runner = build_runner(cfg)
            with safe_checkpoint_loading(self.unsafe_load):
                metrics = runner.test()
        except FileNotFoundError as e:
            warnings.warn(f'ID mIoU skipped: {e}')
            return None
        return float(metrics['mIoU'])


def ood_test(config: str,
             checkpoint: str,
             work_dir: Optional[str] = None,
             datasets: Sequence[str] = ('synthetic_ood', ),
             scorers: Optional[Sequence[str]] = None,
             tune: Sequence[str] = (),
             tune_on: Optional[str] = None,
             show_dir: Optional[str] = None,
             show_num: int = 10,
             export_smiyc: Optional[str] = None,
             tta: bool = False,
             id_eval: bool = True,
             cfg_options: Optional[dict] = None,
             launcher: str = 'none',
             unsafe_load: bool = False) -> dict:
    """Evaluate ``checkpoint`` on OOD ``datasets`` with every scorer.

    Args:
        config / checkpoint: The model.
        work_dir: Output directory (``results.json``, ``results.csv``,
            ``results.md``, ``curves/``); default as mmseg's tools.
        datasets: Preset names (``configs/_base_/datasets/ood/``) or preset
            files.
        scorers: Scorer names; ``None`` = every default scorer the model
            supports (others skipped with a warning). Named scorers that the
            model cannot support are an error.
        tune: Any of ``eta``, ``delta``, ``temperature``: grid-search them
            on ``tune_on`` (one forward pass per image for the whole grid),
            maximizing AP; the best values are then used on every dataset.
        tune_on: Dataset to tune on (default: the first of ``datasets``).
        show_dir / show_num: Heatmaps of the first ``show_num`` images.
        export_smiyc: Directory for the SMIYC submission files.
        tta: Test-time augmentation (scores merged by ``OODSegTTAModel``).
        id_eval: Also report the mIoU of the config's own test set.
        cfg_options / launcher / unsafe_load: As in ``tools/test.py``.

    Returns:
        The payload written to ``results.json``.
    """
    unknown = [t for t in tune if t not in TUNE_GRID]
    if unknown:
        raise ValueError(f'`--tune` takes {sorted(TUNE_GRID)}, got {unknown}')
    tester = OODTester(config, checkpoint, work_dir, cfg_options, launcher,
                       unsafe_load, tta)
    work_dir = tester.work_dir
    resolved = [resolve_dataset(d) for d in datasets]
    names = [n for n, _ in resolved]
    if tune and tune_on is None:
        tune_on = names[0]
    if tune and tune_on not in names:
        resolved.insert(0, resolve_dataset(tune_on))
        tune_on = resolved[0][0]
    rank0 = get_rank() == 0
    if rank0:
        os.makedirs(work_dir, exist_ok=True)
        for ext in ('json', 'csv', 'md', 'partial.json'):
            p = osp.join(work_dir, f'results.{ext}')
            if osp.exists(p):
                os.remove(p)  # never leave a stale result beside a new run
    strict = scorers is not None
    scorer_list = list(scorers) if scorers is not None else list(
        DEFAULT_SCORERS)
    payload = dict(complete=False, config=config, checkpoint=checkpoint,
                   datasets=names, results={}, tuning=None, id_miou={})

    if tune:
        grid = restrict_grid(tuning_scorers(), tune)
        ds = dict(resolved)[tune_on]
        metric = tester.run_pass(
            f'tune_{tune_on}', ds, grid, True,
            metric=dict(type='OODMetric', bits=16,
                        component_threshold=None))
        best = best_of_grid(metric.last_results, grid)
        payload['tuning'] = dict(
            dataset=tune_on, tuned=list(tune), best=best,
            grid={n: dict(params=grid[n],
                          ap=metric.last_results[n]['ap'],
                          auroc=metric.last_results[n]['auroc'],
                          fpr95=metric.last_results[n]['fpr95'])
                  for n in grid})
        scorer_list += [
            dict(b['params'], name=f'{t}*') for t, b in best.items()
        ]

    for name, ds in resolved:
        preset, smiyc_name = SMIYC_NAMES.get(name, ('anomaly_track', name))
        hooks = []
        if show_dir:
            hooks.append(dict(type='OODVisualizationHook',
                              out_dir=osp.join(show_dir, name),
                              num=show_num, palette=tester.palette))
        if export_smiyc:
            hooks.append(dict(type='SMIYCExportHook', out_dir=export_smiyc,
                              dataset_name=smiyc_name))
        metric = tester.run_pass(
            name, ds, scorer_list, strict, hooks,
            dict(type='OODMetric', component_threshold='best_f1',
                 component_preset=preset))
        payload['results'][name] = {
            n: {k: (float(v) if isinstance(v, (float, np.floating)) else v)
                for k, v in r.items()}
            for n, r in metric.last_results.items()
        }
        if rank0:
            from ..evaluation.report import plot_curves
            plot_curves(osp.join(work_dir, 'curves'), name,
                        metric.last_pixel, metric.last_results)
            with open(osp.join(work_dir, 'results.partial.json'), 'w') as f:
                json.dump(payload, f, indent=2)

    if id_eval:
        miou = tester.id_miou()
        if miou is not None:
            payload['id_miou'] = dict(test_set=miou)
    payload['complete'] = True
    if rank0:
        from ..evaluation.report import markdown_table, write_results
        write_results(work_dir, payload)
        p = osp.join(work_dir, 'results.partial.json')
        if osp.exists(p):
            os.remove(p)
        print('\n' + markdown_table(payload['results'], payload['id_miou']))
        print(f'\nresults: {osp.join(work_dir, "results.md")}')
    return payload
