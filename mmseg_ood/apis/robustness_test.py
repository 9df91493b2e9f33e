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

Edges: model names are checked before any work (they become folder names,
cell keys and table cells: no ``|``, path separator, ``..``, control
character, duplicate or name of the tool's own files); a damaged resume
file (truncated, not JSON, wrong structure) is set aside as
``robustness.partial.json.damaged`` and the run starts over; a resume file
of another run's settings is refused by name (see :func:`load_partial`).
"""
from __future__ import annotations

import copy
import hashlib
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
from ..engine.background_iou_pass import background_index as _background_index
from ..engine.evaluation_session import EvaluationSession
from ..engine.tracking import (add_vis_backends, check_vis_backends,
                               robustness_scalars, send_figures,
                               send_scalars)
from ..errors import (DamagedFileError, InvalidValueError, MissingInputError,
                      OutputPathError)
from ..reports.results import percent
from ..reports.robustness import (ROBUSTNESS_SCHEMA,
                                  ROBUSTNESS_SCHEMA_VERSION, cell_key,
                                  check_robustness_payload,
                                  robustness_schema, robustness_summary,
                                  write_robustness_results)
from ..utils.files import check_output_dir, dump_json, load_json
from ..utils.run_record import run_record

__getattr__ = package_getattr(__name__)  # names moved to lower layers

__all__ = ['robustness_test', 'ModelSpec', 'corruption_cells',
           'SEVERITIES', 'check_model_names', 'load_partial']

SEVERITIES = (1, 2, 3, 4, 5)
#: Version of ``robustness.json``'s cells (its ``schema_version``); a
#: partial file of another version is not resumed.
RESULTS_SCHEMA = ROBUSTNESS_SCHEMA_VERSION
SCHEMA_CHANGES = ROBUSTNESS_SCHEMA
#: The clean cell (severity 0).
CLEAN = ('clean', 0)
#: The resume file in the work dir.
PARTIAL_FILE = 'robustness.partial.json'
#: The results the tool writes in the work dir.
OUTPUT_FILES = ('robustness.json', 'robustness.csv', 'robustness.md',
                'fig5_severity.png', 'fig6_examples.png')
#: What the tool writes in the work dir besides each model's folder; no
#: model may be named so.
RESERVED_NAMES = OUTPUT_FILES + (PARTIAL_FILE, PARTIAL_FILE + '.damaged',
                                 'corruption_cache')


@dataclass
class ModelSpec:
    """A model of the run: its name (table label), config and checkpoint.

    Attributes:
        name: The model's label in the tables and the name of its folder
            under the work dir (see :func:`check_model_names`).
        config: Path of the model's config file (its test set is the one
            corrupted).
        checkpoint: Path of the model's checkpoint file.
    """
    name: str
    config: str
    checkpoint: str


def corruption_cells(corruptions: Sequence[str],
                     severities: Sequence[int]) -> List[Tuple[str, int]]:
    """``[('clean', 0), (corruption, severity), ...]``, severity-major per
    corruption.

    Args:
        corruptions: Corruption names, in the order the tables list them.
        severities: Severity levels (ints in 1..5) run for each corruption.

    Returns:
        list: The clean cell first, then every ``(corruption, severity)``
        pair, all severities of one corruption together.
    """
    return [CLEAN] + [(c, s) for c in corruptions for s in severities]


def check_model_names(names: Sequence[str], msc: bool = False) -> None:
    """Refuse model names that cannot name a folder, a cell and a table
    row, before any work.

    A name is a folder under the work dir (``<name>``, and ``<name>_msc``
    with ``msc``), a part of the cell keys (``model|corruption|severity|
    ss``) and a cell of the Markdown tables, so it must be a non-empty
    name without surrounding spaces, ``|``, ``/``, ``\\``, control
    characters (a line break), not ``.`` / ``..``, not one of the files the
    tool writes in the work dir (:data:`RESERVED_NAMES`), and distinct from
    the others (also ignoring case, as on case-insensitive file systems;
    and from their ``_msc`` folders).

    Args:
        names: The models' names, one per model.
        msc: Whether the run also tests with multi-scale + flip, so that
            each model also writes a ``<name>_msc`` folder.

    Raises:
        InvalidValueError: the first name refused, and why.
    """
    seen = {}
    for name in names:
        what = f'model name {name!r} (--names)'
        if not isinstance(name, str) or not name.strip():
            raise InvalidValueError(f'{what}: a model name must not be '
                                    'empty; give each model a name with '
                                    '--names')
        if name != name.strip():
            raise InvalidValueError(f'{what} starts or ends with a space')
        if '|' in name:
            raise InvalidValueError(
                f"{what} holds '|', which separates the fields of the cell "
                'keys and the columns of the tables; choose another name')
        bad = [c for c in ('/', '\\', os.sep, os.altsep) if c and c in name]
        if bad or name in ('.', '..'):
            raise InvalidValueError(
                f'{what} is a folder under the work dir and must not hold a '
                "path separator or be '.' or '..'; choose another name")
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise InvalidValueError(f'{what} holds a control character (a '
                                    'line break?); choose another name')
        if name.lower() in RESERVED_NAMES:
            raise InvalidValueError(
                f'{what} is a file or folder the tool writes in the work '
                'dir; choose another name')
        key = name.lower()
        if key in seen:
            same = 'twice' if seen[key] == name else \
                f'and {seen[key]!r} (they differ only in case)'
            raise InvalidValueError(
                f'model names must be unique: {name!r} {same}; give '
                'each model its own name with --names')
        seen[key] = name
    if msc:
        for name in names:
            if (name + '_msc').lower() in seen:
                raise InvalidValueError(
                    f'model names {name!r} and {name + "_msc"!r}: with '
                    f'--msc, the folder of {name!r} with test-time '
                    f'augmentation is {name + "_msc"!r}; choose another '
                    'name')


def _check_request(models, corruptions, severities, ood_datasets,
                   msc=False):
    if not models:
        raise InvalidValueError('give at least one CONFIG CHECKPOINT pair')
    check_model_names([m.name for m in models], msc)
    for m in models:
        for what, path in (('config', m.config), ('checkpoint',
                                                  m.checkpoint)):
            if not path.startswith('mmseg_ood::') and not osp.isfile(path):
                raise MissingInputError(f'model {m.name!r}: no {what} file '
                                        f'{path!r}')
    if corruptions in ('all', ['all'], ('all', )):
        corruptions = list(CORRUPTIONS)
    corruptions = list(corruptions)
    bad = [c for c in corruptions if c not in CORRUPTIONS + EXTRA_CORRUPTIONS]
    if bad or not corruptions:
        raise InvalidValueError(
            f'unknown corruptions {bad}; choose from '
            f'{list(CORRUPTIONS)} (or {list(EXTRA_CORRUPTIONS)}'
            ") or 'all'")
    if len(set(corruptions)) != len(corruptions):
        raise InvalidValueError(f'`corruptions` repeats a name: {corruptions}')
    severities = list(severities)
    if not severities or any(isinstance(s, bool) or not isinstance(s, int)
                             or not 1 <= s <= 5 for s in severities) or \
            len(set(severities)) != len(severities):
        raise InvalidValueError(
            '`severities` must be distinct ints in 1..5 (the '
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


def _log(message: str) -> None:
    print(f'[robustness_test] {message}', flush=True)


def _set_aside(path: str, suffix: str, why: str) -> None:
    """Rename ``path`` to ``<path>.<suffix>`` (``.<suffix>.2``, ... if
    taken), saying so: its cells are kept for a look, the run starts over.
    Another process of a distributed run may have moved it first."""
    target, n = f'{path}.{suffix}', 1
    while osp.lexists(target):
        n += 1
        target = f'{path}.{suffix}.{n}'
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return  # another rank set it aside
    _log(f'{why}; set it aside as {target} and starting over')


def _setting_differences(theirs, ours) -> List[str]:
    """What differs between two ``_settings`` dicts, in words."""
    if not isinstance(theirs, dict):
        return ['settings']
    out = []
    for key in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(key), ours.get(key)
        if a == b:
            continue
        if key == 'models' and isinstance(a, list) and len(a) == len(b):
            for x, y in zip(a, b):
                if not isinstance(x, dict):
                    out.append('models')
                    continue
                for field in ('name', 'config', 'checkpoint', 'sha256'):
                    if x.get(field) != y.get(field):
                        out.append(f'model {y["name"]!r} {field}' + (
                            ' (the checkpoint file changed)'
                            if field == 'sha256' else
                            f': {_brief(x.get(field))} there, '
                            f'{_brief(y.get(field))} here'))
        else:
            out.append(f'{key}: {_brief(a)} there, {_brief(b)} here')
    return out


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def load_partial(path: str, settings: dict) -> Dict[str, dict]:
    """The finished cells of an interrupted run (``robustness.partial.json``)
    to resume from; ``{}`` when there is none.

    - no file: ``{}``;
    - a damaged file (truncated, not UTF-8, not JSON, cells or settings of
      the wrong structure): set aside as ``<path>.damaged`` with a log line
      naming it, ``{}`` (it would block every rerun otherwise);
    - cells of an older results schema (:data:`SCHEMA_CHANGES`: the same
      names held other quantities): set aside as ``<path>.schema<N>``,
      ``{}``;
    - a file of a newer schema version (a newer mmseg_ood): refused;
    - a run with other settings (models, checkpoints, corruptions,
      severities, MSC, OOD datasets, seed, scorers): refused, naming what
      differs. Such a file holds the cells of a run that may have taken
      hours, and a changed flag is more often a slip than a new study:
      the user resumes it with its own settings, or moves or deletes it
      to start over (or uses another work dir). Starting over silently
      would replace it at the first finished cell.

    Args:
        path: Path of the resume file (``<work_dir>/robustness.partial.json``).
        settings: What this run's cells depend on (models with their
            checkpoints' SHA-256, corruptions, severities, MSC, OOD datasets,
            seed, scorers); the file's must equal it.

    Returns:
        dict: The finished cells, by cell key (``model|corruption|severity|
        ss``).

    Raises:
        DamagedFileError: a newer schema version, or other settings (the
            message names the file, what differs and what to do).
    """
    if not osp.lexists(path):
        return {}
    try:
        d = load_json(path, 'resume file')
    except DamagedFileError as e:
        _set_aside(path, 'damaged', str(e))
        return {}
    if isinstance(d, dict):
        schema = robustness_schema(d)
        if isinstance(schema, int) and not isinstance(schema, bool):
            if schema > RESULTS_SCHEMA:  # a newer mmseg_ood wrote it
                raise DamagedFileError(
                    f'resume file {path} has schema version {schema}, newer '
                    f'than this mmseg_ood reads ({RESULTS_SCHEMA}): resume '
                    'it with the mmseg_ood that wrote it, or move it away '
                    'to start over')
            if schema < RESULTS_SCHEMA:
                _set_aside(path, f'schema{schema}',
                           f'{path} has results schema {schema}, this '
                           f'version writes {RESULTS_SCHEMA} '
                           f'({SCHEMA_CHANGES[RESULTS_SCHEMA]})')
                return {}
    try:
        check_robustness_payload(d, path, 'resume file', complete=False)
    except DamagedFileError as e:
        _set_aside(path, 'damaged', str(e))
        return {}
    if d['settings'] != settings:
        diff = _setting_differences(d['settings'], settings)
        raise DamagedFileError(
            f'resume file {path} holds {len(d["cells"])} finished cell(s) of '
            f'a run with other settings ({"; ".join(diff[:4])}'
            f'{"; ..." if len(diff) > 4 else ""}): rerun with those '
            'settings to resume it, use another --work-dir, or move the '
            'file away to start over')
    return d['cells']


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
                    unsafe_load: bool = False,
                    vis_backends: Sequence[str] = ()) -> dict:
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
        vis_backends: mmengine visualizer backends
            (:data:`~mmseg_ood.engine.tracking.VIS_BACKENDS`) the first
            model's Runner also sends the results through at the end:
            :func:`~mmseg_ood.engine.tracking.robustness_scalars` and the
            figures (``fig5_severity``, ``fig6_examples``).

    Returns:
        The payload written to ``robustness.json``.
    """
    check_vis_backends(vis_backends)
    check_output_dir(work_dir, '--work-dir')
    for name in OUTPUT_FILES:
        if osp.isdir(osp.join(work_dir, name)):
            raise OutputPathError(
                f'--work-dir {work_dir}: {name} is a folder where the tool '
                'writes that file; move it away')
    if cache_dir is not None:
        check_output_dir(cache_dir, '--cache-dir')
    corruptions, severities, presets = _check_request(
        models, corruptions, severities, ood_datasets, msc)
    cells = corruption_cells(corruptions, severities)
    settings = _settings(models, corruptions, severities, msc, presets, seed)
    partial = osp.join(work_dir, PARTIAL_FILE)
    done = load_partial(partial, settings)
    os.makedirs(work_dir, exist_ok=True)
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
        # one model's Runner tracks the whole run (one event file)
        add_vis_backends(first.cfg, list(vis_backends))
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
                dump_json(dict(schema_version=RESULTS_SCHEMA,
                               schema=RESULTS_SCHEMA, complete=False,
                               settings=settings, cells=done), partial)
        first_session = next(iter(sessions.values()))
        payload = dict(schema_version=RESULTS_SCHEMA, schema=RESULTS_SCHEMA,
                       complete=True,
                       settings=settings,
                       run=run_record(first_session.cfg,
                                      first_session.checkpoint_meta),
                       models=[m.name for m in models],
                       cells=done)
        if rank0:
            paths = write_robustness_results(work_dir, payload, _examples(
                sessions, models, corruptions, shown[1], cache, seed,
                captured))
            if osp.exists(partial):
                os.remove(partial)
            print(summary_text(payload, paths), flush=True)
            if vis_backends:
                visualizer = first.runner.visualizer
                send_scalars(visualizer, robustness_scalars(payload))
                send_figures(visualizer, [paths[k] for k in ('fig5', 'fig6')
                                          if k in paths], root=work_dir)
        return payload
    finally:
        for s in sessions.values():
            s.close()
        if own_cache and get_dist_info()[0] == 0 and osp.isdir(cache):
            shutil.rmtree(cache, ignore_errors=True)


def summary_text(payload: dict, paths: Dict[str, str]) -> str:
    """The lines a run ends with: where the tables are, and per model the
    clean and the mean corrupted mIoU (%) and their ratio."""
    lines = [f'results: {paths["md"]} (and robustness.json, .csv, '
             f'{len(payload["cells"])} cells)']
    for name, r in robustness_summary(payload).items():
        rel = r['relative_robustness']
        lines.append(f'  {name}: clean mIoU {percent(r["clean_miou"])}, '
                     f'corrupted {percent(r["corrupted_miou"])} (relative '
                     + ('n/a' if rel != rel else f'{rel:.3f}') + ')')
    return '\n'.join(lines)


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
