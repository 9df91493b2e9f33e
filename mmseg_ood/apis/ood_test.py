"""Score a checkpoint on OOD datasets with every scorer in one pass.

The orchestration behind ``tools/ood_test.py``, on top of
:class:`~mmseg_ood.apis.EvaluationSession`: an optional tuning pass, one
pass per OOD dataset (all scorers from one forward pass per image,
:class:`~mmseg_ood.evaluation.OODMetric`, heatmaps, SMIYC export), the ID
mIoU pass, then tables, curves and ``results.json``. What a run is asked to
do is an :class:`~mmseg_ood.apis.OODTestOptions`
(:mod:`mmseg_ood.apis.ood_test_options`).
"""
from __future__ import annotations

import dataclasses
import glob
import os
import os.path as osp
import shutil
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..datasets import OODSegDataset, check_dataset_files, without_annotations
from ..datasets.presets import DatasetPreset, load_dataset_preset
from ..engine import MetaClassifierHook, SMIYCExportHook
from ..engine.background_iou_pass import (background_iou_markdown,
                                          background_iou_pass)
from ..engine.evaluation_session import EvaluationSession
from ..engine.query_selection import model_num_queries, query_selection
from ..engine.tracking import add_vis_backends, track_results
from ..engine.tuning import (best_of_grid, restrict_grid, tune_values,
                             tuning_scorers)
from ..errors import InvalidTypeError, InvalidValueError, OODNotice
from ..evaluation import OODSegmentMetric
from ..evaluation.accumulators.bootstrap import check_bootstrap
from ..evaluation.accumulators.score_distribution import (distributions_of,
                                                          save_distributions)
from ..evaluation.metrics.open_set_iou import OpenSetIoUMetric
from ..formats.smiyc import transform_file
from ..meta import load_meta_classifiers
from ..models import class_weight_norms
from ..reports.figures import (plot_open_set_miou, plot_score_distributions,
                               plot_tuning_sweeps)
from ..reports.html_report import write_run_report
from ..reports.results import (RESULTS_SCHEMA_VERSION, markdown_table, percent,
                               plot_roc_pr, write_per_image, write_results)
from ..reports.segments import segment_tables_markdown
from ..scorers import build_scorer, parse_scorer_spec
from ..scorers.mask_classification.maskomaly import QuerySelection
from ..utils import file_sha256
from ..utils.arguments import check_arguments
from ..utils.files import check_output_dir, dump_json
from ..utils.run_record import run_record
from .ood_test_options import (DEFAULT_SCORERS, OPEN_SET_THRESHOLDS,
                               OODTestOptions, parse_component_threshold,
                               reference_fitted_scorers)
from .fit_on_id import fitted_on_id, fitted_scorers, id_dataset

__all__ = ['ood_test', 'OODTestOptions', 'DEFAULT_SCORERS']


def _plain(results: dict) -> dict:
    """Scorer -> metric -> JSON-friendly value."""
    return {n: {k: (float(v) if isinstance(v, (float, np.floating)) else v)
                for k, v in r.items()}
            for n, r in results.items()}


def _scorer_list(session: EvaluationSession,
                 options: OODTestOptions) -> Tuple[List, Dict[str, dict]]:
    """The scorers to evaluate, those fitted on ID data (``sml``, the
    feature-space scorers) with their statistics, and what
    ``results.json["fitted"]`` records of the fits."""
    names = list(options.scorers) if options.scorers is not None \
        else list(DEFAULT_SCORERS)
    return fitted_scorers(session, names, options.id_split,
                          sml_stats=options.sml_stats)


def _maskomaly_spec(spec) -> Optional[dict]:
    """``spec``'s config dict if it is a ``maskomaly`` scorer, else
    ``None``."""
    cfg = parse_scorer_spec(spec) if isinstance(spec, str) else spec
    if isinstance(cfg, dict) and cfg.get('type') == 'maskomaly':
        return dict(cfg)
    return None


def _query_selections(session: EvaluationSession, plan: _Plan,
                      scorer_list: List) -> Tuple[List, Dict[str, dict]]:
    """The ``maskomaly`` scorers of ``scorer_list`` with their queries
    chosen: from ``queries_file`` (checked against the model), from the
    selection fitted on the reference set ``plan.fit_preset`` (one pass,
    shared by every ``maskomaly`` spec; written to the work dir), or as
    given by ``queries``. Each becomes a config dict with ``queries`` and
    the spec's text as its name. Returns the list and, by name, what
    ``results.json["maskomaly"]`` records: the queries chosen, the
    criterion, the reference set and file, the chosen queries' IoU / AP.
    """
    out, record = list(scorer_list), {}
    fitted = None
    num_queries = sha256 = None
    for i, spec in enumerate(scorer_list):
        cfg = _maskomaly_spec(spec)
        if cfg is None:
            continue
        name = spec if isinstance(spec, str) else \
            cfg.pop('name', None) or cfg['type']
        if num_queries is None:
            num_queries = model_num_queries(session)
        path = cfg.pop('queries_file', None)
        if cfg.get('queries') is not None:
            scorer = build_scorer(cfg)
            bad = [q for q in scorer.queries if q >= num_queries]
            if bad:
                raise InvalidValueError(
                    f'scorer {name!r}: queries {bad} are out of range for '
                    f'this model, which has {num_queries} queries')
            record[name] = dict(queries=list(scorer.queries), file=None,
                                reference=None)
        else:
            if path is not None:
                selection = QuerySelection.load(path)
                if sha256 is None:
                    sha256 = file_sha256(session.checkpoint)
                selection.check_model(num_queries, sha256,
                                      where=f'{name!r}: queries_file {path}')
                new = False
            else:
                if fitted is None:
                    fit = plan.fit_preset
                    fitted = query_selection(session, fit.dataset, fit.name,
                                             fit.path)
                selection, path, new = fitted
            scorer = build_scorer(cfg)  # top_k, select_by, ... checked
            chosen = selection.top(scorer.top_k, scorer.select_by)
            cfg.pop('top_k', None)
            cfg.pop('select_by', None)
            cfg['queries'] = chosen
            record[name] = dict(
                queries=chosen, top_k=scorer.top_k,
                select_by=scorer.select_by, file=osp.abspath(path),
                fitted_in_this_run=new, reference=dict(selection.reference),
                iou=[selection.iou[q] for q in chosen],
                ap=[selection.ap[q] for q in chosen])
        out[i] = dict(cfg, name=name)
    return out, record


def _not_fitted_on(scorer_list: List, selections: Dict[str, dict],
                   dataset: str) -> List:
    """``scorer_list`` without the scorers whose queries were selected on
    ``dataset`` (its own pass would report an in-sample number)."""
    own = {n for n, r in selections.items()
           if (r.get('reference') or {}).get('dataset') == dataset}
    if not own:
        return scorer_list
    warnings.warn(f'{sorted(own)} not scored on {dataset!r}: their queries '
                  'were selected on it', OODNotice)
    return [s for s in scorer_list
            if not (isinstance(s, dict) and s.get('name') in own)]


def _maskomaly_markdown(payload: dict) -> str:
    """Which queries each ``maskomaly`` scorer used and where they were
    selected (Markdown; '' without one)."""
    selections = payload.get('maskomaly')
    if not selections:
        return ''
    lines = ['## Maskomaly query selection', '',
             '| scorer | queries | selected by | reference set | file |',
             '|---|---|---|---|---|']
    for name, r in selections.items():
        ref = r.get('reference') or {}
        where = (f"{ref.get('dataset')} ({ref.get('images')} images)"
                 if ref else 'given')
        by = (f"top {r['top_k']} by {r['select_by']}" if 'top_k' in r
              else 'given')
        lines.append(f"| {name} | {', '.join(map(str, r['queries']))} | "
                     f"{by} | {where} | {r.get('file') or ''} |")
    return '\n'.join(lines)


def _segment_markdown(payload: dict) -> str:
    """The segment tables of a ``--meta-classifier`` run (Markdown)."""
    return '\n'.join(
        f'## Segments on {dataset} (meta classifier)\n\n' +
        segment_tables_markdown({'': dict(results={dataset: rows})}, dataset)
        for dataset, rows in (payload.get('segments') or {}).items())


def _bootstrap_markdown(payload: dict) -> str:
    """What the brackets of a ``bootstrap`` run's tables are ('' without
    one)."""
    b = payload.get('bootstrap')
    if not b:
        return ''
    return (f"Brackets: {100 * b['level']:g} % percentile bootstrap "
            f"intervals over images, {b['samples']} resamples (seed "
            f"{b['seed']}, {b['bins']} bins; images: " + ', '.join(
                f'{d} {n}' for d, n in b['images'].items()) + ').')


def _tuning_markdown(payload: dict) -> str:
    """The best tuned point per scorer type and the class-weight norms
    they act on (Markdown; '' when there is neither)."""
    lines = []
    tuning = payload.get('tuning')
    if tuning:
        lines += [f"## Tuning on {tuning['dataset']} (AP, best point per "
                  'scorer; every point in tuning/ap_vs_<param>.png and '
                  'results.json)', '',
                  '| scorer | best point | AP | grid |', '|---|---|---|---|']
        for kind, b in tuning['best'].items():
            grid = ', '.join(f'{p} {",".join(f"{v:g}" for v in vals)}'
                             for p, vals in tuning['values'].items()
                             if p in b['params'])
            lines.append(f"| {kind} | {b['point']} | {percent(b['ap'])} | "
                         f'{grid} |')
        lines.append('')
    norms = payload.get('class_weight_norms')
    if norms:
        lines.append(
            f"Class-weight norms ||W_c|| of the final classifier: min "
            f"{norms['min']:.3f}, max {norms['max']:.3f} (" + ', '.join(
                f'{c} {w:.3f}' for c, w in zip(norms['classes'],
                                               norms['per_class'])) + ').')
    elif tuning:
        lines.append('Class-weight norms: the model has no 1x1 classifier.')
    return '\n'.join(lines) if tuning or norms else ''


def _write_distributions(out_dir: str, dataset: str, metric) -> None:
    """``<dataset>.json`` (each scorer's ID / OOD histogram at
    :data:`~mmseg_ood.evaluation.accumulators.score_distribution.DEFAULT_NUM_BINS`
    bins, for later comparison) and ``<dataset>.png`` (thesis Figs. 4.2 /
    4.3) from an OODMetric's pooled histograms."""
    os.makedirs(out_dir, exist_ok=True)
    dists = distributions_of(metric.last_pixel)
    save_distributions(osp.join(out_dir, f'{dataset}.json'), dataset, dists)
    plot_score_distributions(osp.join(out_dir, f'{dataset}.png'), dataset,
                             dists, metric.last_results)


def _open_set_curve(metric: OpenSetIoUMetric) -> dict:
    """``results.json["open_set_iou"]`` of an evaluated metric: the
    thresholds, the mIoU at each and the plain mIoU (percent)."""
    curve = metric.last_curve
    ts = [t for t in curve if t is not None]
    return dict(scorer=metric.scorer, thresholds=ts,
                miou=[float(curve[t]) for t in ts],
                plain=float(curve[None]))


#: Figure directories of a run, written as ``<name>.partial`` and renamed
#: when the run completes.
FIGURE_DIRS = ('curves', 'distributions', 'tuning', 'extremes')

#: Largest tuning grid scored at the evaluation's own histogram resolution.
EXACT_GRID_POINTS = 16


def _tune(session: EvaluationSession, preset: DatasetPreset,
          tune: Dict[str, tuple], grid: Dict[str, dict]) -> dict:
    """The tuning pass: every grid point on ``preset``, best AP per type;
    ``tune`` maps each tuned parameter to its grid values (recorded as
    ``values``).

    The histograms have the evaluation's resolution (``bits=20``) while the
    grid has at most :data:`EXACT_GRID_POINTS` points, ``bits=16`` beyond
    (at most 2 instead of 32 MiB per point): the norm-decoupled scores span
    a few percent of their magnitude, and 2^-7-wide bins then hold them in
    a handful of bins (on the demo model ``n_energy`` AP 9.71 at
    ``bits=16`` against 11.15 exactly), enough to pick the wrong point.
    """
    bits = 20 if len(grid) <= EXACT_GRID_POINTS else 16
    result = session.run_pass(
        preset.dataset, name=f'tune_{preset.name}', scorers=grid,
        ood_labels=True,
        metrics=[dict(type='OODMetric', bits=bits, component_threshold=None)])
    res = result.metric('OODMetric').last_results
    return dict(
        dataset=preset.name, tuned=list(tune), bits=bits,
        values={p: list(v) for p, v in tune.items()},
        best=best_of_grid(res, grid),
        grid={n: dict(params=grid[n], ap=res[n]['ap'],
                      auroc=res[n]['auroc'], fpr95=res[n]['fpr95'])
              for n in grid})


#: The keywords of :func:`ood_test` besides the fields of
#: :class:`OODTestOptions`.
_RUN_KEYWORDS = ('options', 'work_dir', 'cfg_options', 'launcher',
                 'unsafe_load')


def ood_test(config: str,
             checkpoint: str,
             options: Optional[OODTestOptions] = None,
             *,
             work_dir: Optional[str] = None,
             cfg_options: Optional[dict] = None,
             launcher: str = 'none',
             unsafe_load: bool = False,
             **fields) -> dict:
    """Evaluate ``checkpoint`` on OOD ``datasets`` with every scorer.

    ``ood_test(config, checkpoint, OODTestOptions(datasets=[...]))`` and
    ``ood_test(config, checkpoint, datasets=[...])`` make the same run.

    Args:
        config: Config file or ``mmseg_ood::<path>``.
        checkpoint: The model's weights.
        options: The evaluation options (datasets, scorers, tuning,
            exports, metrics: :class:`OODTestOptions`, which documents
            each); ``None``: the defaults. A path in its place is the
            ``work_dir``, as the third argument was before the options.
        work_dir: Output directory (``results.json``, ``results.csv``,
            ``results.md``, ``curves/``, ``distributions/``: each
            dataset's ID / OOD score histograms as ``<dataset>.png`` and
            ``<dataset>.json``, ``tuning/ap_vs_<param>.png`` when tuning);
            default as mmseg's tools.
        cfg_options / launcher / unsafe_load: As in ``tools/test.py``.
        **fields: Fields of :class:`OODTestOptions` (``datasets=...``,
            ``scorers=...``), applied over ``options``.

    Returns:
        The payload written to ``results.json``.

    Raises:
        TypeError: a keyword that is neither an argument nor a field of
            :class:`OODTestOptions` (named, with the accepted ones), or
            ``options`` of another type.
        ValueError / FileNotFoundError: a bad option
            (:meth:`OODTestOptions.validate`), a dataset preset or meta
            classifier that cannot be loaded; before anything is read or
            written.
    """
    if isinstance(options, (str, os.PathLike)):
        if work_dir is not None:
            raise InvalidTypeError(
                f'ood_test: got the work dir twice, {options!r} '
                f'in the place of `options` and `work_dir` '
                f'{work_dir!r}')
        options, work_dir = None, os.fspath(options)
    if options is None:
        options = OODTestOptions()
    elif not isinstance(options, OODTestOptions):
        raise InvalidTypeError(
            'ood_test: `options` must be an OODTestOptions, got '
            f'{type(options).__name__} {options!r}')
    check_arguments('ood_test', fields, list(_RUN_KEYWORDS) + [
        f.name for f in dataclasses.fields(OODTestOptions)])
    options = dataclasses.replace(options, **fields)
    plan = _check_request(options)
    with EvaluationSession(config, checkpoint, work_dir, cfg_options,
                           launcher, unsafe_load, options.tta,
                           tool='ood_test') as session:
        id_eval = _check_files(session, plan)
        return _run(session, plan, id_eval)


@dataclass
class _Plan:
    """What a run will do, checked before anything runs."""
    options: OODTestOptions
    scorers: Optional[List[str]]
    presets: List[DatasetPreset]
    tune_preset: Optional[DatasetPreset]
    grid: Dict[str, dict]
    meta: Optional[list] = None
    threshold: Tuple[str, object] = ('best-f1', None)
    threshold_preset: Optional[DatasetPreset] = None
    #: ``options.bootstrap`` with every key
    bootstrap: Optional[dict] = None
    #: dataset name -> its frames without a label file (exported only)
    unlabelled: Dict[str, int] = field(default_factory=dict)
    #: each tuned parameter's grid values (:func:`tune_values`)
    tune_values: Dict[str, tuple] = field(default_factory=dict)
    #: the labelled reference set ``maskomaly`` selects its queries on
    fit_preset: Optional[DatasetPreset] = None


def _check_request(options: OODTestOptions) -> _Plan:
    """Every option checked (:meth:`OODTestOptions.validate`), presets and
    meta classifiers loaded, the tuning grid chosen, before a file is read
    or written."""
    options.validate()
    for flag, folder in (('--show-dir', options.show_dir),
                         ('--export-smiyc', options.export_smiyc)):
        if folder is not None:
            check_output_dir(folder, flag)
    values = tune_values(options.tune)  # {parameter: grid values}
    tune = list(values)
    scorers = list(options.scorers) if options.scorers is not None else None
    names = scorers if scorers is not None else list(DEFAULT_SCORERS)
    meta = None
    if options.meta_classifier is not None:
        meta = load_meta_classifiers(options.meta_classifier)
        if meta[0].scorer not in names:
            raise InvalidValueError(
                f'{options.meta_classifier}: the meta classifier reads '
                f'{meta[0].scorer!r} maps, which are not among the scorers '
                f'{names}; add it to `scorers`')
    presets = [load_dataset_preset(d) for d in options.datasets]
    grid, tune_preset = {}, None
    if tune:
        grid = restrict_grid(tuning_scorers(values), tune, scorers)
        by_name = {p.name: p for p in presets}
        tune_on = options.tune_on or presets[0].name
        tune_preset = by_name.get(tune_on) or load_dataset_preset(tune_on)
    fitted = reference_fitted_scorers(scorers)
    fit_preset = load_dataset_preset(options.tune_on) if fitted else None
    if fit_preset is not None:
        _check_disjoint(fit_preset, presets, fitted[0])
        if tune_preset is not None and tune_preset.name == fit_preset.name:
            fit_preset = tune_preset
    threshold = parse_component_threshold(options.component_threshold)
    threshold_preset = load_dataset_preset(threshold[1]) \
        if threshold[0] == 'from' else None
    for role, p in (('tune_on', tune_preset), ('tune_on', fit_preset),
                    ('component_threshold from:', threshold_preset)):
        if p is not None and p.whole_image:
            raise InvalidValueError(
                f'`{role}` {p.name!r} is a whole-image OOD set '
                '(no OOD label maps): it has a background IoU, '
                'not pixel OOD metrics')
    return _Plan(options, scorers, presets, tune_preset, grid, meta,
                 threshold, threshold_preset,
                 bootstrap=check_bootstrap(options.bootstrap),
                 tune_values=values, fit_preset=fit_preset)


def _check_disjoint(reference: DatasetPreset, presets: List[DatasetPreset],
                    scorer: str) -> None:
    """Refuse a reference set that is one of the evaluated ones (by name,
    preset file or data root): a selection fitted on the very images it is
    evaluated on reports an optimistic number."""
    def root(p):
        r = p.dataset.get('data_root') if isinstance(p.dataset, dict) \
            else None
        return osp.realpath(r) if isinstance(r, str) else None

    for p in presets:
        if p.name == reference.name or (
                p.path and reference.path and osp.exists(p.path) and
                osp.exists(reference.path) and
                osp.samefile(p.path, reference.path)):
            same = f'is the evaluated dataset {p.name!r}'
        elif root(p) is not None and root(p) == root(reference):
            same = (f'reads the data of the evaluated dataset {p.name!r} '
                    f'({root(p)})')
        else:
            continue
        raise InvalidValueError(
            f'`tune_on` {reference.name!r} {same}: scorer {scorer!r} '
            'selects its queries on a labelled reference set that must be '
            'disjoint from `datasets`; give another --tune-on')


def _check_files(session: EvaluationSession, plan: _Plan) -> bool:
    """Check the datasets' files (roots, images); whether to run the ID
    pass (skipped, with a warning, when the config's test set is not
    there)."""
    options = plan.options
    # the backends' packages are checked here, before the Runner is built
    add_vis_backends(session.cfg, list(options.vis_backends))
    presets = plan.presets + [p for p in (plan.tune_preset,
                                          plan.threshold_preset,
                                          plan.fit_preset) if p]
    presets = list({id(p): p for p in presets}.values())
    for p in presets:
        what = f'dataset {p.name!r} ({p.path})'
        n = check_dataset_files(p.dataset, what)
        every = _all_frames(p.dataset) if options.export_smiyc else None
        if every is not None:
            unlabelled = check_dataset_files(every, what) - n
            if unlabelled:
                plan.unlabelled[p.name] = unlabelled
    names = plan.scorers if plan.scorers is not None else []
    to_fit = [n for n in names if fitted_on_id(n, options.sml_stats)]
    if to_fit:
        check_dataset_files(id_dataset(session.cfg, options.id_split),
                            f'the {options.id_split} set to fit {to_fit} on')
    if options.id_eval:
        try:
            check_dataset_files(session.cfg.test_dataloader.dataset,
                                "the config's test set (ID mIoU)")
        except FileNotFoundError as e:
            warnings.warn(f'ID mIoU skipped: {e}', OODNotice)
            return False
    return options.id_eval


def _all_frames(dataset: dict) -> Optional[dict]:
    """``dataset`` with its frames without a label file too (an
    :class:`~mmseg_ood.datasets.OODSegDataset`'s ``require_labels=False``),
    or ``None`` for another dataset class."""
    from mmseg.registry import DATASETS
    cls = DATASETS.get(dataset.get('type'))
    if not (isinstance(cls, type) and issubclass(cls, OODSegDataset)):
        return None
    return dict(dataset, require_labels=False)


def _value_map_text(dataset: dict) -> Dict[str, int]:
    """The dataset's value map as JSON (``'2-200'`` for a range)."""
    from mmseg.registry import DATASETS
    vm = dataset.get('value_map')
    if vm is None:
        vm = getattr(DATASETS.get(dataset.get('type')), 'VALUE_MAP', {})
    return {(f'{k[0]}-{k[1]}' if isinstance(k, (tuple, list)) else str(k)):
            int(v) for k, v in vm.items()}


def _rule_name(threshold: Tuple[str, object]) -> str:
    """``('tpr', 0.95)`` -> ``'tpr:0.95'`` (as ``--component-threshold``)."""
    rule, arg = threshold
    if rule in ('best-f1', 'smiyc'):
        return rule
    return f'{rule}:{arg}' if rule == 'from' else f'{rule}:{arg:g}'


def _metric_threshold(threshold: Tuple[str, object], preset: DatasetPreset,
                      source: Optional[DatasetPreset], payload: dict):
    """OODMetric's ``component_threshold`` on ``preset``: the rule, or for
    ``from:<dataset>`` the source dataset's best-F1 thresholds by scorer
    (already evaluated: it runs first)."""
    rule, arg = threshold
    if rule == 'fixed':
        return float(arg)
    if rule == 'tpr':
        return f'tpr:{arg:g}'
    if rule == 'smiyc':
        return 'smiyc'
    if rule == 'best-f1' or preset.name == source.name:
        return 'best_f1'
    found = payload['results'][source.name]
    thresholds = {n: r.get('best_f1_threshold') for n, r in found.items()}
    undefined = sorted(n for n, t in thresholds.items()
                       if t is None or t != t)
    if undefined:
        warnings.warn(
            f'component metrics on {preset.name!r}: {source.name!r} has no '
            f'best-F1 threshold for {undefined} (it needs ID and OOD '
            'pixels); those scorers get none', OODNotice)
    # scorers the source did not score (e.g. skipped there) get none
    # either: OODMetric records their rule as 'none'
    return {n: float(t) for n, t in thresholds.items()
            if n not in undefined}


def _run(session: EvaluationSession, plan: _Plan, id_eval: bool) -> dict:
    """The passes, then the results files; ``id_eval``: whether to run the
    ID pass (:func:`_check_files`)."""
    options = plan.options
    export_smiyc = options.export_smiyc
    work_dir = session.work_dir
    # the rank is known once the Runner has set up distributed running
    rank0 = session.runner.rank == 0
    presets = list(plan.presets)
    names = [p.name for p in presets]
    if plan.tune_preset is not None and plan.tune_preset.name not in names:
        names.insert(0, plan.tune_preset.name)
        presets.insert(0, plan.tune_preset)
    source = plan.threshold_preset
    if source is not None:  # evaluated first: its thresholds serve the rest
        if source.name in names:
            presets.pop(names.index(source.name))
            names.remove(source.name)
        names.insert(0, source.name)
        presets.insert(0, source)
    strict = plan.scorers is not None
    scorer_list, fits = _scorer_list(session, options)
    scorer_list, selections = _query_selections(session, plan, scorer_list)
    if rank0:
        print(f'[ood_test] log: {session.log_file}')
    payload = dict(schema_version=RESULTS_SCHEMA_VERSION, complete=False,
                   config=session.config,
                   checkpoint=session.checkpoint, datasets=names, results={},
                   tuning=None, id_miou={},
                   component_threshold=dict(
                       rule=_rule_name(plan.threshold), thresholds={}),
                   per_image=options.per_image, labels={},
                   run=run_record(session.cfg, session.checkpoint_meta))
    payload['class_weight_norms'] = class_weight_norms(
        session.model, session.dataset_meta('classes'))
    if plan.bootstrap:
        payload['bootstrap'] = dict(plan.bootstrap, images={}, undefined={},
                                    bin_error={})
    if export_smiyc:
        payload['export'] = dict(dir=export_smiyc,
                                 transform=options.export_transform,
                                 transform_files={})
    if plan.meta:
        payload['segments'] = {}
    if selections:
        payload['maskomaly'] = selections
    if fits:
        payload['fitted'] = fits
    # written while the run goes on; results.* and curves/ of an earlier
    # run are replaced only once this one is complete
    partial = osp.join(work_dir, 'results.partial.json')
    staged = {d: osp.join(work_dir, f'{d}.partial') for d in FIGURE_DIRS}
    curves = staged['curves']
    for d in staged.values():
        if rank0 and osp.isdir(d):
            shutil.rmtree(d)

    per_image_rows: Dict[str, list] = {}
    if plan.tune_preset is not None:
        payload['tuning'] = _tune(session, plan.tune_preset,
                                  plan.tune_values, plan.grid)
        if rank0:
            plot_tuning_sweeps(staged['tuning'], payload['tuning'])
        scorer_list += [dict(b['params'], name=f'{t}*')
                        for t, b in payload['tuning']['best'].items()]

    for preset in presets:
        if preset.whole_image:  # no OOD labels: IBE Table 2's number
            payload.setdefault('background_iou', {})[preset.name] = \
                background_iou_pass(session, preset)
            if rank0:
                dump_json(payload, partial)
            continue
        hooks = []
        if options.show_dir:
            hooks.append(dict(type='OODVisualizationHook',
                              out_dir=osp.join(options.show_dir, preset.name),
                              num=options.show_num, palette=session.palette))
        if options.per_image:  # the report's best and worst images
            hooks.append(dict(type='ExtremeImagesHook',
                              out_dir=osp.join(staged['extremes'],
                                               preset.name),
                              palette=session.palette))
        export_hook = dict(type='SMIYCExportHook', out_dir=export_smiyc,
                           dataset_name=preset.smiyc_name,
                           transform=options.export_transform,
                           spill_dir=work_dir)
        unlabelled = plan.unlabelled.get(preset.name, 0)
        # the frames the metric evaluates: exported by the metric (from
        # its own spilled maps and histograms), or raw by the hook
        export = None
        if export_smiyc and not unlabelled:
            if options.export_transform == 'rank':
                export = dict(out_dir=export_smiyc,
                              dataset_name=preset.smiyc_name)
            else:
                hooks.append(export_hook)
        threshold = _metric_threshold(plan.threshold, preset, source,
                                      payload)
        metrics = [dict(type='OODMetric', component_threshold=threshold,
                        component_preset=preset.component_preset,
                        per_image=options.per_image, dataset_name=preset.name,
                        export=export, bootstrap=plan.bootstrap)]
        if plan.meta:
            hooks.append(MetaClassifierHook(plan.meta))
            metrics.append(OODSegmentMetric(plan.meta[0].scorer,
                                            meta_classifier=plan.meta))
        pass_scorers = _not_fitted_on(scorer_list, selections, preset.name)
        result = session.run_pass(
            preset.dataset, name=preset.name, scorers=pass_scorers,
            strict=strict, hooks=hooks, ood_labels=True, metrics=metrics)
        metric = result.metric('OODMetric')
        payload['results'][preset.name] = _plain(metric.last_results)
        payload['labels'][preset.name] = dict(
            unlisted_values=metric.last_labels,
            value_map=_value_map_text(preset.dataset))
        payload['component_threshold']['thresholds'][preset.name] = {
            n: dict(rule=metric.last_thresholds[n],
                    value=r.get('component_threshold'))
            for n, r in metric.last_results.items()}
        if plan.bootstrap:
            for key in ('images', 'undefined', 'bin_error'):
                payload['bootstrap'][key][preset.name] = \
                    metric.last_bootstrap[key]
        if options.per_image and rank0:
            per_image_rows[preset.name] = metric.last_per_image.table()
        if export_smiyc and unlabelled:
            # a submission needs every frame: one more pass, over all of
            # them, that only scores and exports
            hook = SMIYCExportHook(**{k: v for k, v in export_hook.items()
                                      if k != 'type'})
            every = _all_frames(preset.dataset)
            every['pipeline'] = without_annotations(every.get(
                'pipeline', session.cfg.test_dataloader.dataset.pipeline))
            session.run_pass(
                every, name=f'{preset.name} (export, all frames)',
                scorers=pass_scorers, strict=strict, metrics=[],
                hooks=([MetaClassifierHook(plan.meta)] if plan.meta else [])
                + [hook])
            exported = list(hook.transforms)
        else:
            exported = list(metric.last_transforms)
        if export_smiyc:
            payload['export'].setdefault('frames', {})[preset.name] = dict(
                labelled=result.size, unlabelled=unlabelled)
        if export_smiyc and options.export_transform == 'rank':
            payload['export']['transform_files'][preset.name] = {
                n: transform_file(export_smiyc, n, preset.smiyc_name)
                for n in exported}
        if plan.meta:
            payload['segments'][preset.name] = result.metric(
                'OODSegmentMetric').last_results
        if rank0:
            plot_roc_pr(curves, preset.name, metric.last_pixel,
                        metric.last_results)
            _write_distributions(staged['distributions'], preset.name,
                                 metric)
            dump_json(payload, partial)

    if id_eval:
        open_set = OpenSetIoUMetric(
            scorer='entropy', thresholds=(None, ) + OPEN_SET_THRESHOLDS) \
            if options.open_set_iou else None
        result = session.run_pass(
            name='id_test_set', scorers=['entropy'] if open_set else None,
            metrics=[dict(type='IoUMetric', iou_metrics=['mIoU'],
                          prefix='id')] + ([open_set] if open_set else []))
        payload['id_miou'] = dict(test_set=float(result.metrics['id/mIoU']))
        if open_set is not None:
            payload['open_set_iou'] = _open_set_curve(open_set)
            if rank0:
                plot_open_set_miou(
                    osp.join(curves, 'open_set_miou.png'),
                    {osp.basename(session.checkpoint):
                     payload['open_set_iou']})
    payload['complete'] = True
    if rank0:
        write_results(work_dir, payload, '\n\n'.join(
            t for t in (_bootstrap_markdown(payload),
                        _segment_markdown(payload),
                        _tuning_markdown(payload),
                        _maskomaly_markdown(payload),
                        background_iou_markdown(
                            payload.get('background_iou'))) if t))
        if options.per_image:
            write_per_image(osp.join(work_dir, 'per_image.csv'),
                            per_image_rows)
        for name, staging in staged.items():
            final = osp.join(work_dir, name)
            if osp.isdir(final):
                shutil.rmtree(final)
            if osp.isdir(staging):
                os.replace(staging, final)
        write_run_report(work_dir, payload, [
            dict(row, dataset=d) for d, rows in per_image_rows.items()
            for row in rows] if options.per_image else None, {
                'Bootstrap intervals': _bootstrap_markdown(payload),
                'Meta-classification of segments':
                    _segment_markdown(payload),
                'Tuning': _tuning_markdown(payload),
                'Query selection': _maskomaly_markdown(payload),
                'Background IoU': background_iou_markdown(
                    payload.get('background_iou'))})
        if osp.exists(partial):
            os.remove(partial)
        print('\n' + markdown_table(payload['results'], payload['id_miou']))
        tuning_text = _tuning_markdown(payload)
        if tuning_text:
            print('\n' + tuning_text)
        if payload.get('background_iou'):
            print('\n' + background_iou_markdown(payload['background_iou']))
        written = [n for n in ('results.json', 'results.csv', 'results.md',
                               'report.html', 'per_image.csv', *FIGURE_DIRS)
                   if osp.exists(osp.join(work_dir, n))]
        print(f'\nresults: {osp.join(work_dir, "results.md")}\n'
              f'wrote into {work_dir}: {", ".join(written)}')
        if options.vis_backends:
            figures = sorted(
                p for d in ('curves', 'distributions')
                for p in glob.glob(osp.join(work_dir, d, '*.png')))
            track_results(session.runner.visualizer, payload, figures,
                          root=work_dir)
    return payload
