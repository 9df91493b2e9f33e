"""Calibrate an OOD decision for deployment: ``tools/calibrate_ood.py``.

One evaluation pass (:class:`~mmseg_ood.engine.EvaluationSession`) scores
the calibration data with one scorer; :class:`~mmseg_ood.evaluation.
OperatingPointMetric` picks the threshold exactly and measures the rates
it achieves; the result is an :class:`~mmseg_ood.formats.threshold_file.
OODCalibration` written as JSON, which ``OODSegmentor``, ``OODInferencer``,
``tools/ood_infer.py`` and ``tools/export_onnx.py`` read.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence

from mmengine.dist import get_rank

from ..datasets import check_dataset_files
from ..datasets.presets import available_dataset_presets, load_dataset_preset
from ..engine.evaluation_session import EvaluationSession
from ..engine.tracking import (add_vis_backends, calibration_scalars,
                               check_vis_backends, send_scalars)
from ..errors import InvalidValueError, UserError
from ..evaluation.metrics.operating_point import (OperatingPointMetric,
                                                  describe_rule,
                                                  threshold_summary)
from ..formats.threshold_file import (OODCalibration, check_ood_label,
                                      check_rate, model_definition)
from ..models.introspection import final_decode_head
from ..scorers import build_scorer
from ..utils import (load_checkpoint_file, resolve_config_path,
                     state_dict_sha256)
from ..utils.files import check_output_path
from .sml import SML_SPLITS, id_dataset, sml_scorer

__all__ = ['calibrate_ood', 'ID_SPLITS']

#: The config's own ID sets ``--id-dataset`` may name (besides presets).
ID_SPLITS = ('val', 'train', 'test')


def _check_request(scorer, id_fpr, tpr, best_f1, ood_dataset, id_dataset_,
                   level, ood_label, scorer_options) -> tuple:
    """``(rule, target)``; every argument checked before anything runs."""
    chosen = [name for name, v in (('id_fpr', id_fpr), ('tpr', tpr),
                                   ('best_f1', best_f1 or None))
              if v is not None]
    if len(chosen) != 1:
        raise InvalidValueError(
            'give exactly one of --id-fpr RATE, --tpr RATE or '
            f'--best-f1; got {chosen or "none"}')
    rule = chosen[0]
    target = {'id_fpr': id_fpr, 'tpr': tpr, 'best_f1': None}[rule]
    if target is not None:
        check_rate(target, '--id-fpr' if rule == 'id_fpr' else '--tpr')
    if rule != 'id_fpr' and ood_dataset is None:
        raise InvalidValueError(
            f'--{rule.replace("_", "-")} needs a labelled OOD '
            'set: --ood-dataset NAME (presets: '
            f'{", ".join(available_dataset_presets())})')
    if rule == 'id_fpr' and ood_dataset is not None:
        raise InvalidValueError('--id-fpr uses ID data (--id-dataset), not '
                                '--ood-dataset')
    if rule != 'id_fpr' and id_dataset_ not in (None, 'val'):
        raise InvalidValueError(f'--id-dataset is for --id-fpr, not --'
                                f'{rule.replace("_", "-")}')
    check_rate(level, '--level')
    check_ood_label(ood_label, '--ood-label')
    if not isinstance(scorer, str) or not scorer:
        raise InvalidValueError(
            f'--scorer must be a scorer name, got {scorer!r}')
    if 'type' in (scorer_options or {}):
        raise InvalidValueError(
            '--scorer-options must not set `type`; name the '
            'scorer with --scorer')
    if scorer == 'sml' and {'stats_file', 'num_classes'} & set(
            scorer_options or {}):
        raise InvalidValueError(
            'sml: give fitted statistics with --sml-stats FILE, '
            'not --scorer-options stats_file / num_classes')
    config = dict(type=scorer, **dict(scorer_options or {}))
    if scorer != 'sml':
        build_scorer(dict(config))  # unknown names / options fail here
    return rule, target, config


def _scorer(session: EvaluationSession, config: dict,
            sml_stats: Optional[str], sml_fit_on: str):
    """The scorer to calibrate and its fitted state (SML), or ``None``."""
    scorer = build_scorer(dict(config))
    if config['type'] != 'sml':
        return scorer, None
    fitted = sml_scorer(session, sml_stats, sml_fit_on)
    state = fitted.state_dict()
    scorer.load_state_dict(state)
    return scorer, {k: v.tolist() if hasattr(v, 'tolist') else v
                    for k, v in state.items()}


def _calibration_data(session: EvaluationSession, rule: str,
                      id_name: Optional[str], ood_name: Optional[str]):
    """``(dataset config, name, labels kind, ood_labels)``."""
    if rule != 'id_fpr':
        preset = load_dataset_preset(ood_name)
        return preset.dataset, preset.name, 'ood', True
    id_name = id_name or 'val'
    if id_name in ID_SPLITS:
        if id_name == 'test':
            return None, 'test', 'id', False  # the config's test set
        return id_dataset(session.cfg, id_name), id_name, 'id', False
    preset = load_dataset_preset(id_name)  # a labelled set's ID pixels
    return preset.dataset, preset.name, 'ood', True


def _input_files(config, checkpoint, sml_stats) -> list:
    """The files the run reads that an output must not replace."""
    try:
        config = resolve_config_path(config)
    except UserError:  # named by the session, in its turn
        pass
    return [config, checkpoint, sml_stats]


def _check_out(out: str, work_dir: Optional[str], inputs: list) -> None:
    """Refuse ``--out`` before any work: one of the inputs (by any link), a
    folder, or in a folder that does not exist (the work dir excepted: the
    run creates it)."""
    folder = osp.dirname(osp.abspath(out))
    if work_dir is not None and not osp.exists(folder) and \
            folder == osp.abspath(work_dir):
        return
    check_output_path(out, inputs, what='--out')


def calibrate_ood(config: str,
                  checkpoint: str,
                  scorer: str = 'energy',
                  work_dir: Optional[str] = None,
                  id_fpr: Optional[float] = None,
                  tpr: Optional[float] = None,
                  best_f1: bool = False,
                  id_dataset: Optional[str] = None,
                  ood_dataset: Optional[str] = None,
                  scorer_options: Optional[dict] = None,
                  sml_stats: Optional[str] = None,
                  sml_fit_on: str = 'train',
                  level: float = 0.95,
                  ood_label: Optional[int] = None,
                  out: Optional[str] = None,
                  cfg_options: Optional[dict] = None,
                  launcher: str = 'none',
                  unsafe_load: bool = False,
                  vis_backends: Sequence[str] = ()) -> OODCalibration:
    """Choose the threshold of one scorer and write the calibration file.

    Args:
        config / checkpoint: The model.
        scorer: Scorer name (``energy``, ``n_energy``, ``sml``...).
        work_dir: Output directory (``calibration.json``, logs).
        id_fpr: Target ID false-positive rate: the threshold flags at most
            this share of ID pixels of ``id_dataset`` (no OOD labels).
        tpr: Target TPR on the labelled ``ood_dataset``.
        best_f1: The best pixel-F1 threshold on ``ood_dataset``.
        id_dataset: ``'val'`` (default), ``'train'`` or ``'test'`` (the
            config's sets, semantic void left out) or a dataset preset
            (its ID pixels).
        ood_dataset: A dataset preset with OOD labels.
        scorer_options: The scorer's parameters (tuned ``eta``, ``delta``,
            ``temperature``...).
        sml_stats / sml_fit_on: SML statistics file, or the ID split to
            fit them on (cached in ``work_dir``), as in ``ood_test``.
        level: Confidence level of the achieved rates' intervals.
        ood_label: Label of OOD pixels in predictions (``None``: the model's
            ``num_classes``, a new "unknown" class).
        out: Calibration file (default ``<work_dir>/calibration.json``);
            checked before any work: not the config, the checkpoint or the
            SML statistics (by any name, links included), not a folder,
            and in a folder that exists (or is ``work_dir``).
        cfg_options / launcher / unsafe_load: As in ``tools/test.py``.
        vis_backends: mmengine visualizer backends
            (:data:`~mmseg_ood.engine.tracking.VIS_BACKENDS`) the Runner
            also sends the threshold and the achieved rates through
            (:func:`~mmseg_ood.engine.tracking.calibration_scalars`).

    Returns:
        OODCalibration: also written to ``out`` (rank 0).

    Raises:
        InvalidValueError: a bad request (before anything runs), or
            calibration data without the pixels the rule needs.
        OutputPathError: ``out`` cannot be written safely (before anything
            runs).
        MissingInputError / DamagedFileError: the checkpoint is missing or
            not a checkpoint (before anything runs).
    """
    rule, target, scorer_config = _check_request(
        scorer, id_fpr, tpr, best_f1, ood_dataset, id_dataset, level,
        ood_label, scorer_options)
    check_vis_backends(vis_backends)
    if sml_fit_on not in SML_SPLITS:
        raise InvalidValueError(
            f'--sml-fit-on must be one of {SML_SPLITS}, got '
            f'{sml_fit_on!r}')
    inputs = _input_files(config, checkpoint, sml_stats)
    if out is not None:
        _check_out(out, work_dir, inputs)
    # the weights the threshold is bound to; a damaged or missing
    # checkpoint fails here, before any work
    weights_sha256 = state_dict_sha256(
        load_checkpoint_file(checkpoint, unsafe=unsafe_load), checkpoint)
    with EvaluationSession(config, checkpoint, work_dir, cfg_options,
                           launcher, unsafe_load,
                           tool='calibrate_ood') as session:
        add_vis_backends(session.cfg, list(vis_backends))
        dataset, data_name, labels, ood_labels = _calibration_data(
            session, rule, id_dataset, ood_dataset)
        # the data (and the variable naming its root) before any model
        check_dataset_files(
            dataset if dataset is not None else
            session.cfg.test_dataloader.dataset,
            f'the calibration set {data_name!r}')
        scorer_obj, state = _scorer(session, scorer_config, sml_stats,
                                    sml_fit_on)
        metric = OperatingPointMetric(
            scorer, rule, target, labels=labels, level=level,
            spill_dir=session.work_dir)
        session.run_pass(dataset, name=f'calibrate_{data_name}',
                         scorers={scorer: scorer_obj}, metrics=[metric],
                         ood_labels=ood_labels)
        result = metric.last_result
        head = final_decode_head(session.model)
        model = dict(config=osp.abspath(config) if osp.exists(config)
                     else config, checkpoint=osp.abspath(checkpoint),
                     definition=model_definition(session.cfg.model),
                     num_classes=int(head.num_classes),
                     classes=list(session.dataset_meta('classes') or []))
        calibration = OODCalibration(
            scorer_name=scorer, scorer_config=scorer_config,
            scorer_state=state, threshold=result['threshold'], rule=rule,
            target=target, dataset=data_name,
            state_dict_sha256=weights_sha256,
            achieved=result['achieved'],
            data={k: result[k] for k in ('images', 'id_pixels',
                                         'ood_pixels')},
            model=model, ood_label=ood_label,
            description=describe_rule(rule, target))
        out = out or osp.join(session.work_dir, 'calibration.json')
        if get_rank() == 0:
            calibration.save(out, inputs, what='--out')
            goal = rule if target is None else f'{rule} {target:g}'
            print(f'[calibrate_ood] {scorer} on {data_name}: threshold '
                  f'{calibration.threshold:.7g} ({goal})\n  ' +
                  '\n  '.join(threshold_summary(result)) +
                  f'\ncalibration: {out}')
            if vis_backends:
                send_scalars(session.runner.visualizer,
                             calibration_scalars(calibration))
        calibration.source = out
        return calibration
