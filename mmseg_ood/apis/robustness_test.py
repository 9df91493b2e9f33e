"""Robustness to corrupted input: several models, every corruption and
severity (SCrIBE sec. 4, Tables 1-2, Fig. 5-6).

The orchestration behind ``tools/robustness_test.py``, on top of
:class:`~mmseg_ood.engine.EvaluationSession`: one session per model (and one
with test-time augmentation per model for ``msc``), then, cell by cell
(corruption x severity, clean first), one pass per model over the config's
test set with :class:`~mmseg_ood.datasets.ImageCorruption` in its pipeline
(mIoU; ECE and expected non-distinctiveness for background models), and
one per OOD dataset (AUROC / AP / FPR95 of every scorer under the same
corruption). The corruption runs in the dataloader workers; its cache makes
the first model corrupt each image and the others read it, so every model
sees the same pixels and each image is corrupted once. Finished cells go to
``robustness.partial.json`` as they finish; a rerun with the same settings
resumes from them, and the tables are written only when every cell is
done.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import os.path as osp
import shutil
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.dist import get_dist_info

from ..datasets import CORRUPTIONS, check_dataset_files, with_corruption
from ..datasets.corruption import EXTRA_CORRUPTIONS
from ..datasets.presets import load_dataset_preset
from ..deprecation import package_getattr
from ..engine import PredictionCaptureHook
from ..engine.background_iou_pass import \
    background_index as _background_index
from ..engine.evaluation_session import EvaluationSession
from ..reports.robustness import write_robustness_results
from ..utils.files import dump_json
from ..utils.run_record import run_record

__getattr__ = package_getattr(__name__)  # names moved to lower layers

__all__ = ['robustness_test', 'ModelSpec', 'corruption_cells',
           'SEVERITIES']

SEVERITIES = (1, 2, 3, 4, 5)
#: Version of ``robustness.json``'s cells; a partial file of another
#: version is not resumed.
RESULTS_SCHEMA = 2
SCHEMA_CHANGES = {
    2: 'non_distinctiveness is IBE eq. 4 (foreground softmax); schema 1 '
       'held p_BG * max full softmax, now non_distinctiveness_full_softmax'}
#: The clean cell (severity 0).
CLEAN = ('clean', 0)


@dataclass
class ModelSpec:
    """A model of the run: its name (table label), config and checkpoint."""
    name: str
    config: str
    checkpoint: str


def corruption_cells(corruptions: Sequence[str],
                     severities: Sequence[int]) -> List[Tuple[str, int]]:
    """``[('clean', 0), (corruption, severity), ...]``, severity-major per
    corruption."""
    return [CLEAN] + [(c, s) for c in corruptions for s in severities]


def cell_key(model: str, corruption: str, severity: int, msc: bool) -> str:
    return f'{model}|{corruption}|{severity}|{"msc" if msc else "ss"}'


def _check_request(models, corruptions, severities, ood_datasets):
    if not models:
        raise ValueError('give at least one CONFIG CHECKPOINT pair')
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f'model names must be unique, got {names}')
    for m in models:
        for what, path in (('config', m.config), ('checkpoint',
                                                  m.checkpoint)):
            if not path.startswith('mmseg_ood::') and not osp.isfile(path):
                raise FileNotFoundError(f'model {m.name!r}: no {what} file '
                                        f'{path!r}')
    if corruptions in ('all', ['all'], ('all', )):
        corruptions = list(CORRUPTIONS)
    corruptions = list(corruptions)
    bad = [c for c in corruptions if c not in CORRUPTIONS + EXTRA_CORRUPTIONS]
    if bad or not corruptions:
        raise ValueError(f'unknown corruptions {bad}; choose from '
                         f'{list(CORRUPTIONS)} (or {list(EXTRA_CORRUPTIONS)}'
                         ") or 'all'")
    if len(set(corruptions)) != len(corruptions):
        raise ValueError(f'`corruptions` repeats a name: {corruptions}')
    severities = list(severities)
    if not severities or any(isinstance(s, bool) or not isinstance(s, int)
                             or not 1 <= s <= 5 for s in severities) or \
            len(set(severities)) != len(severities):
        raise ValueError('`severities` must be distinct ints in 1..5 (the '
                         f'clean cell, 0, is always run), got {severities}')
    presets = [load_dataset_preset(d) for d in ood_datasets]
    return corruptions, sorted(severities), presets


def _settings(models, corruptions, severities, msc, presets, seed) -> dict:
    """What a run's cells depend on (a resumed run must match)."""
    def digest(path):
        h = hashlib.sha256()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
        return h.hexdigest()

    return dict(models=[dict(name=m.name, config=m.config,
                             checkpoint=m.checkpoint,
                             sha256=digest(m.checkpoint)) for m in models],
                corruptions=corruptions, severities=severities, msc=msc,
                ood_datasets=[p.name for p in presets], seed=seed,
                scorers=_default_scorers())


def _load_partial(path: str, settings: dict) -> Dict[str, dict]:
    """Finished cells of an interrupted run with the same settings and
    results schema."""
    if not osp.isfile(path):
        return {}
    with open(path) as f:
        d = json.load(f)
    if d.get('schema', 1) != RESULTS_SCHEMA:
        print(f'[robustness_test] {path} has results schema '
              f'{d.get("schema", 1)}, this version writes {RESULTS_SCHEMA} '
              f'({SCHEMA_CHANGES[RESULTS_SCHEMA]}): starting afresh')
        return {}
    if d.get('settings') != settings:
        print(f'[robustness_test] {path} is from a run with other '
              'settings: starting afresh')
        return {}
    return d.get('cells', {})


def robustness_test(models: Sequence[ModelSpec],
                    work_dir: str,
                    corruptions: Sequence[str] = 'all',
                    severities: Sequence[int] = SEVERITIES,
                    msc: bool = False,
                    ood_datasets: Sequence[str] = (),
                    cache_dir: Optional[str] = None,
                    seed: int = 0,
                    cfg_options: Optional[dict] = None,
                    launcher: str = 'none',
                    unsafe_load: bool = False) -> dict:
    """Evaluate ``models`` on corrupted copies of their test set.

    Args:
        models: The models (each with its own config: their test sets should
            be the same for the tables to compare).
        work_dir: Output directory (``robustness.json``, ``.csv``, ``.md``,
            ``fig5_severity.png``, ``fig6_examples.png``; per model, the
            session logs under ``<work_dir>/<name>``).
        corruptions: Names of :data:`~mmseg_ood.datasets.CORRUPTIONS` (or
            the validation ones), or ``'all'`` (the first 15).
        severities: Of 1-5; the clean images (severity 0) always run.
        msc: Also test with multi-scale + flip (the config's
            ``tta_pipeline``).
        ood_datasets: OOD dataset presets scored (every default scorer)
            under each corruption.
        cache_dir: Keep the corrupted images there (reused by later runs);
            default: a cache under ``work_dir``, removed at the end.
        seed: Base seed of the corruptions.
        cfg_options / launcher / unsafe_load: As in ``tools/test.py``.

    Returns:
        The payload written to ``robustness.json``.
    """
    corruptions, severities, presets = _check_request(
        models, corruptions, severities, ood_datasets)
    cells = corruption_cells(corruptions, severities)
    settings = _settings(models, corruptions, severities, msc, presets, seed)
    os.makedirs(work_dir, exist_ok=True)
    partial = osp.join(work_dir, 'robustness.partial.json')
    done = _load_partial(partial, settings)
    own_cache = cache_dir is None
    cache = cache_dir or osp.join(work_dir, 'corruption_cache')
    sessions: Dict[Tuple[str, bool], EvaluationSession] = {}
    try:
        for m in models:
            for tta in ([False, True] if msc else [False]):
                sessions[(m.name, tta)] = EvaluationSession(
                    m.config, m.checkpoint,
                    osp.join(work_dir, m.name + ('_msc' if tta else '')),
                    cfg_options, launcher, unsafe_load, tta,
                    tool='robustness_test')
        first = sessions[(models[0].name, False)]
        check_dataset_files(first.cfg.test_dataloader.dataset,
                            f"model {models[0].name!r}'s test set")
        for p in presets:
            check_dataset_files(p.dataset, f'dataset {p.name!r} ({p.path})')
        # the first Runner sets up the process group: ask for the rank
        # after it (before, every rank is rank 0 of 1)
        first.runner  # noqa: B018
        rank0 = get_dist_info()[0] == 0
        todo = [(cell, key) for cell in cells for key in sessions
                if cell_key(key[0], *cell, key[1]) not in done]
        start, total = time.time(), len(todo)
        # Fig. 6 shows the clean and the middle-severity cells: their first
        # image and predictions are kept from the cells' own passes
        shown = (0, severities[len(severities) // 2])
        captured: Dict[Tuple[str, str], PredictionCaptureHook] = {}
        for i, ((corruption, severity), (name, tta)) in enumerate(todo):
            if rank0:
                eta = (time.time() - start) / i * (total - i) if i else 0
                print(f'[robustness_test] cell {i + 1}/{total}: {name}'
                      f'{" (MSC)" if tta else ""}, {corruption}@{severity}'
                      f' (ETA {eta / 60:.1f} min)', flush=True)
            hooks = []
            if not tta and severity in shown:
                hooks = [captured.setdefault((corruption, name),
                                             PredictionCaptureHook())]
            done[cell_key(name, corruption, severity, tta)] = _cell(
                sessions[(name, tta)], corruption, severity, presets, cache,
                seed, with_ood=not tta, hooks=hooks)
            if rank0:
                dump_json(dict(schema=RESULTS_SCHEMA, complete=False,
                               settings=settings, cells=done), partial)
        first_session = next(iter(sessions.values()))
        payload = dict(schema=RESULTS_SCHEMA, complete=True,
                       settings=settings,
                       run=run_record(first_session.cfg,
                                      first_session.checkpoint_meta),
                       models=[m.name for m in models],
                       cells=done)
        if rank0:
            write_robustness_results(work_dir, payload, _examples(
                sessions, models, corruptions, shown[1], cache, seed,
                captured))
            if osp.exists(partial):
                os.remove(partial)
        return payload
    finally:
        for s in sessions.values():
            s.close()
        if own_cache and get_dist_info()[0] == 0 and osp.isdir(cache):
            shutil.rmtree(cache, ignore_errors=True)


def _corrupted(dataset: dict, corruption: str, severity: int, cache: str,
               seed: int) -> dict:
    dataset = copy.deepcopy(dict(dataset))
    if severity:
        dataset['pipeline'] = with_corruption(dataset['pipeline'],
                                              corruption, severity, seed,
                                              cache)
    return dataset


def _cell(session: EvaluationSession, corruption: str, severity: int,
          presets, cache: str, seed: int, with_ood: bool,
          hooks: Sequence = ()) -> dict:
    """One model's metrics in one cell (``hooks``: added to its test-set
    pass)."""
    tag = f'{corruption}@{severity}'
    dataset = _corrupted(session.cfg.test_dataloader.dataset, corruption,
                         severity, cache, seed)
    metrics = [dict(type='IoUMetric', iou_metrics=['mIoU'], prefix='id'),
               dict(type='ECEMetric',
                    background_index=_background_index(session))]
    result = session.run_pass(dataset, name=f'{tag} (test set)',
                              metrics=metrics, hooks=hooks)
    # mmseg's IoUMetric reports percent; the cells keep fractions
    out = dict(miou=float(result.metrics['id/mIoU']) / 100,
               ece=float(result.metrics['calibration/ece']))
    for key in ('non_distinctiveness', 'non_distinctiveness_full_softmax'):
        nd = result.metrics.get(f'calibration/{key}')
        if nd is not None:
            out[key] = float(nd)
    if with_ood and presets:
        out['ood'] = {}
        for p in presets:
            pipeline = session.cfg.test_dataloader.dataset.pipeline
            ood = _corrupted(dict(p.dataset, pipeline=pipeline), corruption,
                             severity, cache, seed)
            r = session.run_pass(
                ood, name=f'{tag} ({p.name})', ood_labels=True,
                scorers=_default_scorers(), strict=False,
                metrics=[dict(type='OODMetric', component_threshold=None)])
            res = r.metric('OODMetric').last_results
            out['ood'][p.name] = {
                s: {k: float(v[k]) for k in ('auroc', 'ap', 'fpr95')}
                for s, v in res.items()}
    return out


def _default_scorers():
    from .ood_test import DEFAULT_SCORERS
    return list(DEFAULT_SCORERS)


def _examples(sessions, models, corruptions, severity, cache, seed,
              captured):
    """Fig. 6: the first test image under each corruption at ``severity``
    (and clean), with each model's prediction: kept from the cells' passes,
    or, for cells finished by an earlier run, from a one-image pass."""
    rows = []
    for corruption, s in [CLEAN] + [(c, severity) for c in corruptions]:
        row = dict(corruption=corruption, severity=s, predictions={})
        for m in models:
            session = sessions[(m.name, False)]
            hook = captured.get((corruption, m.name))
            if hook is None or hook.image is None:
                dataset = _corrupted(session.cfg.test_dataloader.dataset,
                                     corruption, s, cache, seed)
                dataset['indices'] = 1
                hook = PredictionCaptureHook()
                session.run_pass(dataset, name=f'example {corruption}@{s}',
                                 metrics=[], hooks=[hook], progress=False)
            row['image'] = hook.image
            row['predictions'][m.name] = hook.prediction
            row['palette'] = session.palette
        rows.append(row)
    return rows
