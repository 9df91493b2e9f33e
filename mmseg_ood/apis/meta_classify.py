"""Meta classification of OOD segments, evaluated and fitted.

The orchestration behind ``tools/meta_classify.py``, on top of
:class:`~mmseg_ood.engine.EvaluationSession`: one pass per OOD dataset
collects every segment of the chosen score map at each threshold (its
features and ground truth: :class:`~mmseg_ood.evaluation.OODSegmentMetric`);
then, per dataset and threshold, a logistic regression is cross-validated
by image (entropy-maximization paper, sec. 7: Table 2's detection errors
without and with it, Table 3's AUROC / AUPRC against the segment's MSP,
Fig. 7), and, with ``save``, one is fitted on all segments of all datasets
per threshold and written to a JSON file that ``ood_test
--meta-classifier`` applies.
"""
from __future__ import annotations

import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ..datasets import check_dataset_files
from ..datasets.presets import load_dataset_preset
from ..engine.evaluation_session import EvaluationSession
from ..engine.tracking import (add_vis_backends, check_vis_backends,
                               meta_scalars, send_figures, send_scalars)
from ..errors import InvalidValueError, OODNotice, OutputPathError
from ..evaluation.metrics.segment_metric import (DEFAULT_SEGMENT_THRESHOLDS,
                                                 SegmentData, check_thresholds,
                                                 segment_results,
                                                 threshold_key)
from ..meta.classifier import (MetaClassifier, cross_validated_tp_probability,
                               describe_cv, resolve_cv, save_meta_classifiers)
from ..meta.segments import TRUE_POSITIVE, feature_names, paper_feature_names
from ..reports.segments import detection_errors_markdown, write_meta_results
from ..scorers import build_scorer
from ..utils.files import check_output_dir, check_output_path
from ..utils.run_record import run_record

__all__ = ['meta_classify', 'FEATURE_SETS']

#: The ``feature_set`` values, every feature or the paper's 46 (for
#: q = 19).
FEATURE_SETS = ('all', 'paper')


def _feature_names(feature_set: str, num_classes: int) -> List[str]:
    return (feature_names if feature_set == 'all' else
            paper_feature_names)(num_classes)


def evaluate_threshold(data: SegmentData, classifier: MetaClassifier,
                       cv: Union[str, int]) -> dict:
    """Table 2 and Table 3 at one threshold
    (:func:`~mmseg_ood.evaluation.metrics.segment_metric.segment_results`), the
    meta classifier's TP probabilities cross-validated by image; ``cv``
    says how (:func:`~mmseg_ood.meta.classifier.describe_cv`),
    or why there is no classifier (``note``)."""
    ev = data.evaluated
    groups = data.image[ev]
    num_groups = len(np.unique(groups))
    if num_groups < 2:
        row = segment_results(data)
        row['note'] = (f'no meta classifier: segments in {num_groups} '
                       'image(s); cross-validation needs 2')
        return row
    is_tp = (data.kind[ev] == TRUE_POSITIVE).astype(np.int64)
    x = classifier.select(data.features[ev], data.feature_names)
    p_tp = cross_validated_tp_probability(classifier, x, is_tp, groups, cv)
    row = segment_results(data, p_tp)
    row['cv'] = describe_cv(cv, num_groups)
    return row


def fit_classifier(parts: Sequence[SegmentData], classifier: MetaClassifier
                   ) -> Optional[MetaClassifier]:
    """``classifier`` fitted on the non-ignored segments of ``parts``, or
    ``None`` (with a warning) if there are too few of a kind."""
    xs, ys = [], []
    for data in parts:
        ev = data.evaluated
        if ev.any():
            xs.append(classifier.select(data.features[ev],
                                        data.feature_names))
            ys.append((data.kind[ev] == TRUE_POSITIVE).astype(np.int64))
    try:
        if not xs:
            raise InvalidValueError(f'no segment at {classifier.scorer} >= '
                                    f'{classifier.threshold:g}')
        return classifier.fit(np.concatenate(xs), np.concatenate(ys))
    except ValueError as e:
        warnings.warn(f'not saved: {e}', OODNotice)
        return None


def _check_request(scorer, thresholds, cv, feature_set, datasets, save,
                   inputs=()):
    build_scorer(scorer)  # ValueError listing the registered names
    thresholds = check_thresholds(thresholds)
    resolve_cv(cv, 2)  # ValueError for a bad value
    if feature_set not in FEATURE_SETS:
        raise InvalidValueError(
            f'`feature_set` must be one of {FEATURE_SETS}, got '
            f'{feature_set!r}')
    if isinstance(datasets, str) or not datasets:
        raise InvalidValueError(
            '`datasets` must be a non-empty list of preset '
            f'names, got {datasets!r}')
    if save is not None:
        # refused now, not at the run's end: a folder, an input (the
        # config, the checkpoint), a folder that is a file; the folder is
        # made now so that the run cannot fail at its end for want of it
        folder = osp.dirname(osp.abspath(save))
        check_output_dir(folder, 'the folder of --save')
        os.makedirs(folder, exist_ok=True)
        check_output_path(save, inputs, '--save')
    presets = [load_dataset_preset(d) for d in datasets]
    return presets, thresholds


def work_dir_output(work_dir: str, path: str) -> bool:
    """Whether ``path`` is one of the files :func:`write_meta_results`
    writes in ``work_dir`` (``meta_results.*``,
    ``detection_errors_*.png``)."""
    if osp.dirname(osp.abspath(path)) != osp.abspath(work_dir):
        return False
    name = osp.basename(path)
    return name in ('meta_results.json', 'meta_results.csv',
                    'meta_results.md') or (
                        name.startswith('detection_errors_') and
                        name.endswith('.png'))


def meta_classify(config: str,
                  checkpoint: str,
                  work_dir: Optional[str] = None,
                  datasets: Sequence[str] = ('synthetic_ood', ),
                  scorer: str = 'entropy',
                  thresholds: Sequence[float] = DEFAULT_SEGMENT_THRESHOLDS,
                  cv: Union[str, int] = 'auto',
                  save: Optional[str] = None,
                  feature_set: str = 'all',
                  C: float = 1.0,
                  cfg_options: Optional[dict] = None,
                  launcher: str = 'none',
                  unsafe_load: bool = False,
                  vis_backends: Sequence[str] = ()) -> dict:
    """Evaluate (and optionally fit) meta classifiers of OOD segments.

    Args:
        config / checkpoint: The model.
        work_dir: Output directory (``meta_results.json``, ``.csv``,
            ``.md``, ``detection_errors_<dataset>.png``); default as mmseg's
            tools.
        datasets: OOD dataset presets (as ``ood_test``); each is
            cross-validated on its own.
        scorer: The score map segmented (the paper: ``entropy``, the
            normalized entropy); any registered scorer.
        thresholds: Segment thresholds ``t`` (in the scorer's units).
        cv: ``'loo'`` (leave one image out), a number of folds (grouped by
            image), or ``'auto'`` (leave one out up to 100 images, else 10
            folds).
        save: JSON file for the classifiers fitted on every segment of every
            dataset (one per threshold).
        feature_set: ``'all'`` or ``'paper'`` (the paper's 46 features for
            19 classes: means of E, V, M, sizes, N, P, centroid).
        C: Inverse regularization strength of the logistic regression.
        cfg_options / launcher / unsafe_load: As in ``tools/test.py``.
        vis_backends: mmengine visualizer backends
            (:data:`~mmseg_ood.engine.tracking.VIS_BACKENDS`) the Runner
            also sends the results through:
            :func:`~mmseg_ood.engine.tracking.meta_scalars` and the
            ``detection_errors_<dataset>`` figures.

    Returns:
        The payload written to ``meta_results.json``.
    """
    check_vis_backends(vis_backends)
    presets, thresholds = _check_request(scorer, thresholds, cv,
                                         feature_set, datasets, save,
                                         (config, checkpoint))
    with EvaluationSession(config, checkpoint, work_dir, cfg_options,
                           launcher, unsafe_load,
                           tool='meta_classify') as session:
        add_vis_backends(session.cfg, list(vis_backends))
        for p in presets:
            check_dataset_files(p.dataset, f'dataset {p.name!r} ({p.path})')
        if save is not None and work_dir_output(session.work_dir, save):
            raise OutputPathError(
                f'--save {save} is one of the results this run writes in '
                f'{session.work_dir}; choose another file name')
        rank0 = session.runner.rank == 0
        if rank0:
            print(f'[meta_classify] log: {session.log_file}')
        collected: Dict[str, Dict[float, SegmentData]] = {}
        for preset in presets:
            result = session.run_pass(
                preset.dataset, name=preset.name, scorers=[scorer],
                ood_labels=True,
                metrics=[dict(type='OODSegmentMetric', scorer=scorer,
                              thresholds=thresholds)])
            collected[preset.name] = result.metric(
                'OODSegmentMetric').last_data
        payload = _evaluate(session, collected, scorer, thresholds, cv,
                            feature_set, C, save)
        payload['run'] = run_record(session.cfg, session.checkpoint_meta)
        if rank0:
            paths = write_meta_results(session.work_dir, payload)
            if vis_backends:
                visualizer = session.runner.visualizer
                send_scalars(visualizer, meta_scalars(payload))
                send_figures(visualizer, [v for k, v in sorted(paths.items())
                                          if k.startswith('png_')])
            for p in presets:
                print(f'\n{p.name} (detection errors, Table 2):\n' +
                      detection_errors_markdown({'model': payload}, p.name))
            print(f'\nresults: {paths["md"]}')
            if payload['saved']:
                print(f'meta classifier: {payload["saved"]} '
                      f'({len(payload["saved_thresholds"])} threshold(s): '
                      f'{", ".join(payload["saved_thresholds"])})')
    return payload


def _evaluate(session, collected, scorer, thresholds, cv, feature_set, C,
              save) -> dict:
    num_classes = max(d.num_classes for per in collected.values()
                      for d in per.values())
    if not num_classes:
        raise InvalidValueError('no image was evaluated')
    names = _feature_names(feature_set, num_classes)
    results = {}
    for dataset, per in collected.items():
        results[dataset] = {
            threshold_key(t): evaluate_threshold(
                per[t], MetaClassifier(names, scorer, t, C=C,
                                       num_classes=num_classes), cv)
            for t in thresholds}
    saved, saved_thresholds = None, []
    if save is not None:
        fitted = [fit_classifier([per[t] for per in collected.values()],
                                 MetaClassifier(names, scorer, t, C=C,
                                                num_classes=num_classes))
                  for t in thresholds]
        fitted = [c for c in fitted if c is not None]
        if not fitted:
            raise InvalidValueError(
                f'no meta classifier could be fitted for '
                f'{save!r}: too few segments of a kind at every '
                'threshold')
        if session.runner.rank == 0:
            save_meta_classifiers(
                save, fitted, inputs=(session.config, session.checkpoint),
                datasets=list(collected), config=session.config,
                checkpoint=session.checkpoint)
        saved = save
        saved_thresholds = [threshold_key(c.threshold) for c in fitted]
    return dict(
        complete=True, config=session.config, checkpoint=session.checkpoint,
        scorer=scorer, thresholds=thresholds, feature_set=feature_set,
        features=names, C=C, saved=saved,
        saved_thresholds=saved_thresholds,
        cv=cv, results=results)
