"""Score a checkpoint on OOD datasets with every scorer in one pass.

The orchestration behind ``tools/ood_test.py``, on top of
:class:`~mmseg_ood.apis.EvaluationSession`: an optional tuning pass, one
pass per OOD dataset (all scorers from one forward pass per image,
:class:`~mmseg_ood.evaluation.OODMetric`, heatmaps, SMIYC export), the ID
mIoU pass, then tables, curves and ``results.json``.
"""
from __future__ import annotations

import os
import os.path as osp
import shutil
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..datasets import OODSegDataset, check_dataset_files, without_annotations
from ..datasets.presets import DatasetPreset, load_dataset_preset
from ..engine import MetaClassifierHook, SMIYCExportHook
from ..engine.background_iou_pass import (background_iou_markdown,
                                          background_iou_pass)
from ..engine.evaluation_session import EvaluationSession
from ..engine.hooks.smiyc_export_hook import TRANSFORMS as EXPORT_TRANSFORMS
from ..engine.tuning import (TuneSpec, best_of_grid, restrict_grid,
                             tunable_types, tune_values, tuning_scorers)
from ..evaluation import OODSegmentMetric
from ..evaluation.accumulators.bootstrap import check_bootstrap
from ..evaluation.accumulators.score_distribution import (distributions_of,
                                                          save_distributions)
from ..evaluation.metrics.ood_metric import threshold_rule
from ..evaluation.metrics.open_set_iou import OpenSetIoUMetric
from ..formats.smiyc import transform_file
from ..meta import load_meta_classifiers
from ..models import class_weight_norms
from ..reports.figures import (plot_open_set_miou, plot_score_distributions,
                               plot_tuning_sweeps)
from ..reports.results import (markdown_table, percent, plot_roc_pr,
                               write_per_image, write_results)
from ..reports.segments import segment_tables_markdown
from ..scorers import build_scorer
from ..utils.files import dump_json
from ..utils.run_record import run_record
from .sml import SML_SPLITS, id_dataset, sml_scorer

__all__ = ['ood_test', 'DEFAULT_SCORERS']

#: Scored when ``scorers`` is not given (``sml`` needs fitted statistics
#: and ``gen`` is beyond the seed methods: both run when asked for by name;
#: ``sml``'s boundary suppression and smoothing through a config dict, e.g.
#: in ``OODScoringHook`` or ``score_image``). Each model scores those its
#: head supports and skips the others with a warning: the embedding
#: scorers (``norm``, ``n_max_logit``, ``n_energy``) need a final 1x1
#: linear classifier,
#: ``background`` an IBE / SCrIBE head, ``rba`` and ``no_object`` a
#: mask-classification head (MaskFormer / Mask2Former).
DEFAULT_SCORERS = ('msp', 'entropy', 'max_logit', 'energy', 'norm',
                   'n_max_logit', 'n_energy', 'background', 'rba',
                   'no_object')


def parse_component_threshold(text) -> Tuple[str, Optional[object]]:
    """``--component-threshold`` -> ``(rule, argument)``.

    ``'best-f1'`` (or ``'best_f1'``): ``('best-f1', None)``, each dataset's
    own best pixel-F1 threshold (the SMIYC benchmark's choice, an oracle);
    a number: ``('fixed', value)``; ``'from:<dataset>'``: ``('from',
    name)``, the best-F1 threshold of another dataset; ``'tpr:<rate>'``:
    ``('tpr', rate)``, the threshold at which each dataset's pixel TPR first
    reaches ``rate``.

    Raises:
        ValueError: anything else (naming the accepted forms).
    """
    forms = ("'best-f1', a number, 'from:<dataset>' or 'tpr:<rate>' "
             '(rate in (0, 1])')
    if not isinstance(text, (str, int, float)) or isinstance(text, bool):
        raise ValueError(f'`component_threshold` must be {forms}, got '
                         f'{text!r}')
    if text in ('best-f1', 'best_f1'):
        return 'best-f1', None
    if isinstance(text, str) and text.startswith('from:'):
        if not text[5:]:
            raise ValueError("`component_threshold` 'from:' needs a "
                             "dataset, e.g. 'from:road_anomaly21'")
        return 'from', text[5:]
    if isinstance(text, str) and text.startswith('tpr:'):
        try:
            return 'tpr', threshold_rule(text)[1]
        except ValueError:
            raise ValueError(f"`component_threshold` 'tpr:<rate>' needs a "
                             f'rate in (0, 1], got {text!r}') from None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f'`component_threshold` must be {forms}, got '
                         f'{text!r}') from None
    if not np.isfinite(value):
        raise ValueError(f'`component_threshold` must be finite, got {text!r}')
    return 'fixed', value


def _plain(results: dict) -> dict:
    """Scorer -> metric -> JSON-friendly value."""
    return {n: {k: (float(v) if isinstance(v, (float, np.floating)) else v)
                for k, v in r.items()}
            for n, r in results.items()}


def _scorer_list(session: EvaluationSession, scorers: Optional[Sequence],
                 sml_stats: Optional[str], sml_fit_on: str) -> List:
    """The scorers to evaluate; ``sml`` gets its fitted statistics."""
    names = list(scorers) if scorers is not None else list(DEFAULT_SCORERS)
    return [sml_scorer(session, sml_stats, sml_fit_on) if n == 'sml' else n
            for n in names]


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
FIGURE_DIRS = ('curves', 'distributions', 'tuning')

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


def ood_test(config: str,
             checkpoint: str,
             work_dir: Optional[str] = None,
             datasets: Sequence[str] = ('synthetic_ood', ),
             scorers: Optional[Sequence[str]] = None,
             tune: TuneSpec = (),
             tune_on: Optional[str] = None,
             show_dir: Optional[str] = None,
             show_num: int = 10,
             export_smiyc: Optional[str] = None,
             export_transform: str = 'rank',
             component_threshold='best-f1',
             per_image: bool = False,
             bootstrap: Optional[dict] = None,
             tta: bool = False,
             id_eval: bool = True,
             open_set_iou: bool = False,
             sml_stats: Optional[str] = None,
             sml_fit_on: str = 'train',
             meta_classifier: Optional[str] = None,
             cfg_options: Optional[dict] = None,
             launcher: str = 'none',
             unsafe_load: bool = False) -> dict:
    """Evaluate ``checkpoint`` on OOD ``datasets`` with every scorer.

    Args:
        config: Config file or ``mmseg_ood::<path>``.
        checkpoint: The model's weights.
        work_dir: Output directory (``results.json``, ``results.csv``,
            ``results.md``, ``curves/``, ``distributions/``: each
            dataset's ID / OOD score histograms as ``<dataset>.png`` and
            ``<dataset>.json``, ``tuning/ap_vs_<param>.png`` when tuning);
            default as mmseg's tools.
        datasets: Preset names (``configs/_base_/datasets/ood/``, shipped
            with the package) or preset files. A whole-image preset
            (``whole_image = True``: textures, noise) gets the model's
            background IoU instead (IBE Table 2,
            :func:`~mmseg_ood.engine.background_iou_pass.background_iou_pass`):
            ``results.json["background_iou"][<dataset>]``, a section of
            ``results.md``; "not applicable" for a model without a
            background class.
        scorers: Scorer names; ``None`` = every default scorer the model
            supports (others skipped with a warning). Named scorers that the
            model cannot support are an error. ``'NAME:key=value,...'``
            sets a scorer's parameters (``'n_energy:eta=1.5'``, see
            :func:`~mmseg_ood.scorers.parse_scorer_spec`), reported under
            that text.
        tune: Any of ``eta``, ``delta``, ``temperature``: grid-search them
            on ``tune_on`` (one forward pass per image for the whole grid),
            maximizing AP; the best values are then used on every dataset.
            Each over the default grid (:data:`~mmseg_ood.engine.tuning.
            TUNE_GRID`) or over values of its own: ``'temperature=0.01,
            0.1,1'`` or a mapping ``{'temperature': (0.01, 0.1, 1)}`` (see
            :func:`~mmseg_ood.engine.tuning.tune_values`). The grid goes to
            ``results.json["tuning"]`` (``values``: each parameter's), AP
            against each parameter to ``tuning/ap_vs_<param>.png``.
        tune_on: Dataset to tune on (default: the first of ``datasets``).
        show_dir / show_num: Heatmaps of the first ``show_num`` images.
        export_smiyc: Directory for the SMIYC submission files
            (``anomaly_p/<method>/<dataset>/<frame>.hdf5``, float16), of
            every frame of each dataset: where some have no label file (a
            benchmark's test frames), one more pass over all frames scores
            and exports them (its transform fitted on all their pixels);
            the metrics cover the labelled ones.
        export_transform: ``'rank'`` (default): each scorer's scores go
            through a monotone transform into [0, 1], fitted on the
            dataset's pixels and recorded in
            ``anomaly_p/<method>/<dataset>.score_transform.json``, so that
            metrics computed from the files equal the tool's; ``'none'``:
            the raw scores cast to float16 (rankings are lost where float16
            is coarse). See :class:`~mmseg_ood.engine.SMIYCExportHook`.
        component_threshold: Threshold of the component metrics (see
            :func:`parse_component_threshold`): ``'best-f1'`` (default,
            SMIYC parity: each dataset's own best pixel-F1 threshold, an
            oracle), a number, ``'from:<dataset>'`` (the best-F1 threshold
            of another dataset, evaluated first) or ``'tpr:<rate>'``.
            ``results.json`` records the rule and every threshold used.
        per_image: Also report AUROC / AP / FPR95 per image, averaged over
            the images with both ID and OOD pixels (columns labelled "per
            image"; the pooled ones "pooled"); ``per_image.csv`` lists each
            image.
        bootstrap: ``None``, or ``dict(samples=R, seed=0, level=0.95,
            bins=1024)``: percentile bootstrap intervals of each scorer's
            pooled AUROC / AP / FPR95 on each dataset, images resampled
            with replacement (``auroc_ci``, ``ap_ci``, ``fpr95_ci`` in
            ``results.json``, brackets in the tables; the settings, the
            number of images and the binning error once, under
            ``bootstrap``). See
            :mod:`mmseg_ood.evaluation.accumulators.bootstrap`.
        tta: Test-time augmentation (scores merged by ``OODSegTTAModel``).
        id_eval: Also report the mIoU of the config's own test set.
        open_set_iou: In that same pass, also the mIoU with an extra OOD
            class for pixels whose ``entropy`` is at least ``t``, for
            ``t`` in :data:`OPEN_SET_THRESHOLDS` (entropy-maximization sec.
            6.3, Fig. 5): ``results.json["open_set_iou"]`` and
            ``curves/open_set_miou.png``. Needs ``id_eval``.
        sml_stats: Statistics file of the ``sml`` scorer; without it they
            are fitted on ``sml_fit_on`` and cached in ``work_dir``.
        sml_fit_on: ``'train'`` or ``'val'``: the config's ID split SML is
            fitted on.
        meta_classifier: A meta-classifier file (``tools/meta_classify.py
            --save``): its scorer's maps are also reported with the
            segments it rejects removed (``<scorer>+meta@<t>``, pixel and
            component metrics), and the segment-wise detection errors
            without and with it go to ``results.json`` (``segments``) and
            ``results.md``.
        cfg_options / launcher / unsafe_load: As in ``tools/test.py``.

    Returns:
        The payload written to ``results.json``.
    """
    plan = _check_request(scorers, tune, tune_on, datasets, sml_stats,
                          sml_fit_on, meta_classifier, tta,
                          component_threshold, per_image, export_smiyc,
                          export_transform, bootstrap)
    plan.open_set_iou = _check_open_set_iou(open_set_iou, id_eval)
    with EvaluationSession(config, checkpoint, work_dir, cfg_options,
                           launcher, unsafe_load, tta,
                           tool='ood_test') as session:
        id_eval = _check_files(session, plan, id_eval, sml_stats, sml_fit_on)
        return _run(session, plan, show_dir, show_num, export_smiyc,
                    id_eval, sml_stats, sml_fit_on)


@dataclass
class _Plan:
    """What a run will do, checked before anything runs."""
    scorers: Optional[List[str]]
    presets: List[DatasetPreset]
    tune: List[str]
    tune_preset: Optional[DatasetPreset]
    grid: Dict[str, dict]
    meta: Optional[list] = None
    threshold: Tuple[str, object] = ('best-f1', None)
    threshold_preset: Optional[DatasetPreset] = None
    export: bool = False
    per_image: bool = False
    export_transform: str = 'rank'
    bootstrap: Optional[dict] = None
    #: dataset name -> its frames without a label file (exported only)
    unlabelled: Dict[str, int] = field(default_factory=dict)
    #: each tuned parameter's grid values (:func:`tune_values`)
    tune_values: Dict[str, tuple] = field(default_factory=dict)
    #: the ID pass also gives the open-set mIoU curve (entropy-max Fig. 5)
    open_set_iou: bool = False


#: Entropy thresholds of ``open_set_iou`` (the normalized entropy is in
#: [0, 1]; entropy-maximization Fig. 5 spans that range).
OPEN_SET_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 21))


def _check_open_set_iou(open_set_iou, id_eval) -> bool:
    """Validate ``open_set_iou`` (a bool, needing the ID pass)."""
    if not isinstance(open_set_iou, bool):
        raise TypeError(f'`open_set_iou` must be a bool, got '
                        f'{open_set_iou!r}')
    if open_set_iou and not id_eval:
        raise ValueError('`open_set_iou` is computed in the ID pass, which '
                         '`id_eval=False` (--no-id-eval) skips')
    return open_set_iou


def _check_request(scorers, tune, tune_on, datasets, sml_stats,
                   sml_fit_on, meta_classifier=None, tta=False,
                   component_threshold='best-f1', per_image=False,
                   export_smiyc=None, export_transform='rank',
                   bootstrap=None) -> _Plan:
    """Every argument checked (scorers built, presets loaded, the tuning
    grid chosen), before a file is read or written."""
    bootstrap = check_bootstrap(bootstrap)
    values = tune_values(tune)  # {parameter: grid values}
    tune = list(values)
    if tune_on is not None and not tune:
        raise ValueError(f'`tune_on` ({tune_on!r}) is given but nothing to '
                         'tune: add `tune` (--tune eta delta temperature)')
    if sml_fit_on not in SML_SPLITS:
        raise ValueError(f'`sml_fit_on` must be one of {SML_SPLITS}, got '
                         f'{sml_fit_on!r}')
    if scorers is not None:
        if isinstance(scorers, str) or not scorers:
            raise ValueError('`scorers` must be a non-empty list of scorer '
                             f'names, got {scorers!r}')
        scorers = list(scorers)
        twice = sorted({n for n in scorers if scorers.count(n) > 1})
        if twice:
            raise ValueError(f'`scorers` names {twice} more than once')
    names = scorers if scorers is not None else list(DEFAULT_SCORERS)
    for name in names:
        build_scorer(name)  # ValueError listing the registered names
    if sml_stats is not None:
        if 'sml' not in names:
            raise ValueError('`sml_stats` is given but `sml` is not among '
                             f'the scorers {names}')
        if not osp.isfile(sml_stats):
            raise FileNotFoundError(f'`sml_stats`: no file {sml_stats!r}')
    meta = None
    if meta_classifier is not None:
        if tta:
            raise ValueError(
                '`meta_classifier` with `tta`: meta classifiers are fitted '
                'on the features of single-scale predictions '
                '(tools/meta_classify.py has no TTA), so they are not '
                'applied to test-time-augmented ones')
        meta = load_meta_classifiers(meta_classifier)
        if meta[0].scorer not in names:
            raise ValueError(
                f'{meta_classifier}: the meta classifier reads '
                f'{meta[0].scorer!r} maps, which are not among the scorers '
                f'{names}; add it to `scorers`')
    presets = [load_dataset_preset(d) for d in datasets]
    grid, tune_preset = {}, None
    if tune:
        grid = restrict_grid(tuning_scorers(values), tune, scorers)
        if not grid:
            raise ValueError(
                f'`tune` {list(tune)} has nothing to tune among the scorers '
                f'{scorers}: it tunes {tunable_types(tune)}')
        by_name = {p.name: p for p in presets}
        tune_on = tune_on or presets[0].name
        tune_preset = by_name.get(tune_on) or load_dataset_preset(tune_on)
    if export_transform not in EXPORT_TRANSFORMS:
        raise ValueError(f'`export_transform` must be one of '
                         f'{EXPORT_TRANSFORMS}, got {export_transform!r}')
    if not isinstance(per_image, bool):
        raise TypeError(f'`per_image` must be a bool, got {per_image!r}')
    threshold = parse_component_threshold(component_threshold)
    threshold_preset = load_dataset_preset(threshold[1]) \
        if threshold[0] == 'from' else None
    for role, p in (('tune_on', tune_preset),
                    ('component_threshold from:', threshold_preset)):
        if p is not None and p.whole_image:
            raise ValueError(f'`{role}` {p.name!r} is a whole-image OOD set '
                             '(no OOD label maps): it has a background IoU, '
                             'not pixel OOD metrics')
    return _Plan(scorers, presets, list(tune), tune_preset, grid, meta,
                 threshold, threshold_preset, bool(export_smiyc), per_image,
                 export_transform, bootstrap, tune_values=values)


def _check_files(session: EvaluationSession, plan: _Plan, id_eval: bool,
                 sml_stats: Optional[str], sml_fit_on: str) -> bool:
    """Check the datasets' files (roots, images); whether to run the ID
    pass (skipped, with a warning, when the config's test set is not
    there)."""
    presets = plan.presets + [p for p in (plan.tune_preset,
                                          plan.threshold_preset) if p]
    for p in presets:
        what = f'dataset {p.name!r} ({p.path})'
        n = check_dataset_files(p.dataset, what)
        every = _all_frames(p.dataset) if plan.export else None
        if every is not None:
            unlabelled = check_dataset_files(every, what) - n
            if unlabelled:
                plan.unlabelled[p.name] = unlabelled
    names = plan.scorers if plan.scorers is not None else []
    if 'sml' in names and sml_stats is None:
        check_dataset_files(id_dataset(session.cfg, sml_fit_on),
                            f'the {sml_fit_on} set to fit SML on')
    if id_eval:
        try:
            check_dataset_files(session.cfg.test_dataloader.dataset,
                                "the config's test set (ID mIoU)")
        except FileNotFoundError as e:
            warnings.warn(f'ID mIoU skipped: {e}')
            return False
    return id_eval


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
    if rule == 'best-f1':
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
            'pixels); those scorers get none')
    # scorers the source did not score (e.g. skipped there) get none
    # either: OODMetric records their rule as 'none'
    return {n: float(t) for n, t in thresholds.items()
            if n not in undefined}


def _run(session: EvaluationSession, plan: _Plan, show_dir, show_num,
         export_smiyc, id_eval, sml_stats, sml_fit_on) -> dict:
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
    scorer_list = _scorer_list(session, plan.scorers, sml_stats, sml_fit_on)
    if rank0:
        print(f'[ood_test] log: {session.log_file}')
    payload = dict(complete=False, config=session.config,
                   checkpoint=session.checkpoint, datasets=names, results={},
                   tuning=None, id_miou={},
                   component_threshold=dict(
                       rule=_rule_name(plan.threshold), thresholds={}),
                   per_image=plan.per_image, labels={},
                   run=run_record(session.cfg, session.checkpoint_meta))
    payload['class_weight_norms'] = class_weight_norms(
        session.model, session.dataset_meta('classes'))
    if plan.bootstrap:
        payload['bootstrap'] = dict(plan.bootstrap, images={}, undefined={},
                                    bin_error={})
    if export_smiyc:
        payload['export'] = dict(dir=export_smiyc,
                                 transform=plan.export_transform,
                                 transform_files={})
    if plan.meta:
        payload['segments'] = {}
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
        if show_dir:
            hooks.append(dict(type='OODVisualizationHook',
                              out_dir=osp.join(show_dir, preset.name),
                              num=show_num, palette=session.palette))
        export_hook = dict(type='SMIYCExportHook', out_dir=export_smiyc,
                           dataset_name=preset.smiyc_name,
                           transform=plan.export_transform,
                           spill_dir=work_dir)
        unlabelled = plan.unlabelled.get(preset.name, 0)
        # the frames the metric evaluates: exported by the metric (from
        # its own spilled maps and histograms), or raw by the hook
        export = None
        if export_smiyc and not unlabelled:
            if plan.export_transform == 'rank':
                export = dict(out_dir=export_smiyc,
                              dataset_name=preset.smiyc_name)
            else:
                hooks.append(export_hook)
        threshold = _metric_threshold(plan.threshold, preset, source,
                                      payload)
        metrics = [dict(type='OODMetric', component_threshold=threshold,
                        component_preset=preset.component_preset,
                        per_image=plan.per_image, dataset_name=preset.name,
                        export=export, bootstrap=plan.bootstrap)]
        if plan.meta:
            hooks.append(MetaClassifierHook(plan.meta))
            metrics.append(OODSegmentMetric(plan.meta[0].scorer,
                                            meta_classifier=plan.meta))
        result = session.run_pass(
            preset.dataset, name=preset.name, scorers=scorer_list,
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
        if plan.per_image and rank0:
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
                scorers=scorer_list, strict=strict, metrics=[],
                hooks=([MetaClassifierHook(plan.meta)] if plan.meta else [])
                + [hook])
            exported = list(hook.transforms)
        else:
            exported = list(metric.last_transforms)
        if export_smiyc:
            payload['export'].setdefault('frames', {})[preset.name] = dict(
                labelled=result.size, unlabelled=unlabelled)
        if export_smiyc and plan.export_transform == 'rank':
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
            if plan.open_set_iou else None
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
                        background_iou_markdown(
                            payload.get('background_iou'))) if t))
        if plan.per_image:
            write_per_image(osp.join(work_dir, 'per_image.csv'),
                            per_image_rows)
        for name, staging in staged.items():
            final = osp.join(work_dir, name)
            if osp.isdir(final):
                shutil.rmtree(final)
            if osp.isdir(staging):
                os.replace(staging, final)
        if osp.exists(partial):
            os.remove(partial)
        print('\n' + markdown_table(payload['results'], payload['id_miou']))
        tuning_text = _tuning_markdown(payload)
        if tuning_text:
            print('\n' + tuning_text)
        if payload.get('background_iou'):
            print('\n' + background_iou_markdown(payload['background_iou']))
        print(f'\nresults: {osp.join(work_dir, "results.md")}')
    return payload
