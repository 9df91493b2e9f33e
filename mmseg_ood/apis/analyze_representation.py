"""Representation structure of several models' logits, side by side.

The orchestration behind ``tools/analyze_representation.py``, on top of
:class:`~mmseg_ood.engine.EvaluationSession`: per model, one pass over the
config's own test set collects the moments of every pixel's logit vector
``v`` (k components) by predicted class
(:class:`~mmseg_ood.evaluation.RepresentationMetric`, merged across
ranks). From them, as the SCrIBE paper's "Inspection of Representation
Structure" (sec. 4, building on the analysis of sec. 2.1):

- Fig. 3: the normalized auto-correlation matrix ``R_ij / sqrt(R_ii R_jj)``,
  ``R = E[v v^T]`` over the pixels predicted as a class, one heatmap per
  model (``autocorrelation_class<c>.png``);
- Fig. 4: the accumulated explained variance of the eigenvalues of the
  covariance of all pixels' ``v``, one curve per model
  (``explained_variance.png``), and the effective dimensionality: the
  number of components that explain 90 % / 95 % of the variance.

References:
    "SCrIBE: Sigmoid + IBE", sec. 2.1 (softmax neglects the negative
    components) and sec. 4, "Inspection of Representation Structure",
    Fig. 3 (auto-correlation) and Fig. 4 (accumulated explained variance).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..deprecation import package_getattr
from ..engine.evaluation_session import EvaluationSession
from ..errors import InvalidValueError, MissingInputError
from ..evaluation.accumulators.representation import RepresentationAccumulator
from ..reports.representation import markdown_table as _markdown_table
from ..reports.representation import \
    write_representation as _write_representation
from ..utils import load_config, resolve_config_path
from ..utils.run_record import run_record

__getattr__ = package_getattr(__name__)  # names moved to lower layers

__all__ = ['analyze_representation', 'config_num_classes']



def config_num_classes(cfg) -> Optional[int]:
    """``k``, the length of the logit vectors, as a config declares it
    (the last decode head's ``out_channels`` or ``num_classes``, or those
    of the head an ``IBEHead`` / ``SCrIBEHead`` wraps), or ``None`` if it
    does not say (then only the pass tells).

    Args:
        cfg: A loaded model config (``mmengine.Config`` or a dict) with a
            ``model.decode_head``; a cascade's last head is read.
    """
    head = (cfg.get('model') or {}).get('decode_head')
    if isinstance(head, (list, tuple)):  # cascade: the last head predicts
        head = head[-1] if head else None
    while isinstance(head, dict):
        k = head.get('out_channels') or head.get('num_classes')
        if isinstance(k, int) and not isinstance(k, bool):
            return k
        head = head.get('head')  # the head an implicit-background head wraps
    return None


def _check_names(models, names) -> List[str]:
    if names is None:
        names = [osp.splitext(osp.basename(c))[0] for c, _ in models]
        origin = 'the config file names (pass `names` to tell them apart)'
    else:
        if isinstance(names, str) or len(names) != len(models):
            raise InvalidValueError(
                f'`names` must give one name per model: {len(models)} '
                f'model(s), got {names!r}')
        names = list(names)
        origin = '`names`'
    for n in names:
        if not isinstance(n, str) or not n or n in ('.', '..') or \
                '/' in n or os.sep in n:
            raise InvalidValueError(
                f'model names are directory names: non-empty, '
                f"no '/', not '.' or '..'; got {n!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidValueError(f'model names must be unique; {origin} repeat '
                                f'{repeated}')
    return names


def _check_request(models, work_dir, names, classes, cfg_options, launcher
                   ) -> Tuple[List[Tuple[str, str]], List[str],
                              Optional[List[int]], List[Optional[int]]]:
    if isinstance(models, (str, bytes)) or not models:
        raise InvalidValueError(
            '`models` must be a non-empty list of (config, '
            f'checkpoint) pairs, got {models!r}')
    for m in models:
        if isinstance(m, (str, bytes)) or len(m) != 2:
            raise InvalidValueError(
                '`models` must be (config, checkpoint) pairs, '
                f'got {m!r}')
    models = [tuple(m) for m in models]
    if not work_dir:
        raise InvalidValueError(
            f'`work_dir` must be a directory, got {work_dir!r}')
    if osp.exists(work_dir) and not osp.isdir(work_dir):
        raise NotADirectoryError(f'`work_dir` must be a directory, got the '
                                 f'file {work_dir!r}')
    names = _check_names(models, names)
    if classes is not None:
        if isinstance(classes, (str, bytes)):
            raise InvalidValueError(
                f'`classes` must be a list of class indices, '
                f'got {classes!r}')
        classes = list(classes)
        for c in classes:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) \
                    or c < 0:
                raise InvalidValueError(
                    f'`classes` must be ints >= 0, got {c!r} '
                    f'in {classes!r}')
        classes = list(dict.fromkeys(int(c) for c in classes))
    ks = []
    for (config, checkpoint), name in zip(models, names):
        resolve_config_path(config)  # FileNotFoundError naming the file
        if not osp.isfile(osp.expanduser(checkpoint)):
            raise MissingInputError(f'checkpoint file not found: '
                                    f'{checkpoint} (model {name!r})')
        k = config_num_classes(load_config(config, cfg_options, None,
                                           launcher))
        if classes and k is not None:
            _check_classes(classes, name, k)
        ks.append(k)
    return models, names, classes, ks


def _check_classes(classes: Sequence[int], name: str, k: int,
                   note: str = '') -> None:
    bad = [c for c in classes if c >= k]
    if bad:
        raise InvalidValueError(
            f'`classes` {bad}{note} out of range for model '
            f'{name!r}: it has k={k} classes (0 to {k - 1})')


def _model_record(config: str, checkpoint: str,
                  acc: RepresentationAccumulator,
                  class_names: Optional[List[str]]) -> dict:
    out = acc.compute()
    return dict(
        config=config, checkpoint=checkpoint, num_classes=acc.num_classes,
        class_names=class_names, **out,
        # [c][i][j]: Fig. 3's matrix of class c (null where undefined)
        autocorrelation=[acc.autocorrelation(c).tolist()
                         for c in range(acc.num_classes)])


def _class_names(session: EvaluationSession, k: int) -> Optional[List[str]]:
    """The model's class names (checkpoint's ``dataset_meta``, else the
    config's test dataset class), if there are ``k`` of them."""
    names = session.dataset_meta('classes')
    return [str(n) for n in names] if names and len(names) == k else None


def analyze_representation(
        models: Sequence[Tuple[str, str]],
        work_dir: str,
        names: Optional[Sequence[str]] = None,
        classes: Optional[Sequence[int]] = None,
        cfg_options: Optional[dict] = None,
        launcher: str = 'none',
        unsafe_load: bool = False) -> dict:
    """Auto-correlation and explained variance of several models' logits.

    Every argument is checked before any model runs (files, names, class
    indices against each config's k where the config states it); then each
    model gets its own :class:`~mmseg_ood.engine.EvaluationSession` (logs in
    ``<work_dir>/<name>``) and one pass of
    :class:`~mmseg_ood.evaluation.RepresentationMetric` over its config's
    test set. Every rank runs the passes (the metric merges them); rank 0
    writes, in ``work_dir``:

    - ``representation.json``: per model ``num_classes`` (k), ``pixels``,
      ``pixels_per_class``, ``explained_variance`` (k values, Fig. 4),
      ``dims_90``, ``dims_95`` and ``autocorrelation`` (``[c][i][j]``, the
      ``(k, k)`` matrix of each class c, Fig. 3; ``null`` where a class
      was never predicted). Its size grows as k^3 (k = 150: ~3.4 M
      numbers);
    - ``representation.md``: the table model | k | pixels | dims 90% |
      dims 95% (``n/a`` where no pixel was seen), also printed;
    - ``explained_variance.png``: Fig. 4, a curve per model, lines at
      90 % and 95 %;
    - ``autocorrelation_class<c>.png`` per class of ``classes``: Fig. 3,
      a heatmap per model on one colour scale (-1 to 1).

    Args:
        models: ``(config, checkpoint)`` pairs; the models may have
            different numbers of classes.
        work_dir: Output directory.
        names: A label per model (unique; also the name of its log
            directory); default: the config file names.
        classes: Classes whose auto-correlation matrices are drawn (each
            must be < k of every model); default: the class the first model
            predicts most often.
        cfg_options / launcher / unsafe_load: As in ``tools/test.py``
            (``cfg_options`` apply to every model).

    Returns:
        The payload written to ``representation.json`` (before NaN became
        ``null``), plus ``files``: the paths written (empty on ranks > 0).

    References:
        "SCrIBE: Sigmoid + IBE", sec. 4, "Inspection of Representation
        Structure", Fig. 3 and Fig. 4.
    """
    models, names, classes, ks = _check_request(
        models, work_dir, names, classes, cfg_options, launcher)
    os.makedirs(work_dir, exist_ok=True)  # a run must not fail at its end
    accumulators: Dict[str, RepresentationAccumulator] = {}
    records: Dict[str, dict] = {}
    rank = 0
    for (config, checkpoint), name, k in zip(models, names, ks):
        # k given where the config states it: a rank that saw no image
        # (more ranks than images) cannot tell it, and the metric's
        # default for that rank (k = 2) would not merge
        metric = dict(type='RepresentationMetric', num_classes=k)
        with EvaluationSession(config, checkpoint, osp.join(work_dir, name),
                               cfg_options, launcher, unsafe_load,
                               tool='analyze_representation') as session:
            rank = session.runner.rank
            if rank == 0:
                print(f'[analyze_representation] {name}: log '
                      f'{session.log_file}')
            result = session.run_pass(name=name, metrics=[metric])
            acc = result.metric('RepresentationMetric').last_accumulator
            if acc is None:
                raise InvalidValueError(
                    f'model {name!r}: no pixel was evaluated '
                    f'(the test set of {config} is empty)')
            accumulators[name] = acc
            records[name] = _model_record(config, checkpoint, acc,
                                          _class_names(session,
                                                       acc.num_classes))
    default = classes is None
    if default:
        classes = [int(np.argmax(accumulators[names[0]].count))]
    for name, acc in accumulators.items():  # k of the logits themselves
        _check_classes(classes, name, acc.num_classes,
                       f' (the class {names[0]!r} predicts most often; pass '
                       '`classes`)' if default else '')
    payload = dict(
        reference='SCrIBE: Sigmoid + IBE, sec. 4, Fig. 3 (normalized '
        'auto-correlation per predicted class) and Fig. 4 (accumulated '
        'explained variance)',
        classes=classes, models=records, run=run_record(), files={})
    table = _markdown_table(records)
    if rank == 0:
        payload['files'] = _write_representation(work_dir, payload,
                                                accumulators)
        print('\n' + table)
        print(f'\nresults: {payload["files"]["md"]}')
    return payload
