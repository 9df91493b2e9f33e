"""Experiment tracking through mmengine's visualizer backends.

A user who tracks runs in TensorBoard, Weights & Biases or MLflow adds the
backend to the config (``vis_backends=[dict(type='TensorboardVisBackend')]``,
mmengine's own classes) or passes ``--vis-backend tensorboard`` to a tool.
The tools then send what they measured through the Runner's visualizer
(or, for a tool without a Runner, one :func:`make_visualizer` builds), so
the backend receives it as it receives mmseg's own training logs:

- ``ood_test``: the scalars of ``results.json``, named
  ``ood/<dataset>/<scorer>/<metric>`` (AUROC, AP, FPR95, sIoU, PPV, mean F1
  and the component threshold, as the fractions ``results.json`` holds)
  and ``id/<dataset>/miou``; the figures the run wrote (ROC / PR curves,
  score distributions), as images named by their file
  (``curves/<dataset>_roc.png``);
- ``robustness_test``, ``meta_classify``, ``calibrate_ood`` and
  ``compare_results``: their results, named by :func:`robustness_scalars`,
  :func:`meta_scalars`, :func:`calibration_scalars` and
  :func:`comparison_scalars`, and their figures.

Names are *tracking names* (:func:`tracking_name`): the same in every
backend, in MLflow's metric-name alphabet.

No tracker of our own: :func:`add_vis_backends` edits the config's
``visualizer`` before the Runner is built, :func:`send_scalars` and
:func:`send_figures` call the visualizer's ``add_scalars`` and
``add_image``.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import os.path as osp
import re
from typing import Dict, Iterator, Mapping, Optional, Sequence

from mmengine.registry import VISBACKENDS
from mmengine.visualization import MLflowVisBackend

from ..errors import InvalidValueError
from ..reports.results import finite_number
from ..utils.extras import require_extra

__all__ = ['VIS_BACKENDS', 'add_vis_backends', 'check_vis_backends',
           'result_scalars', 'track_results', 'TRACKED_METRICS',
           'tracking_name', 'tracking_scalars', 'flat_scalars',
           'send_scalars', 'send_figures', 'make_visualizer',
           'mlflow_tracking_uri', 'robustness_scalars', 'meta_scalars',
           'calibration_scalars', 'comparison_scalars', 'track_comparison',
           'NAME_REPLACEMENTS', 'OODMLflowVisBackend']

#: ``--vis-backend`` name -> (mmengine's backend type, the modules it
#: imports, the package's extra that installs them or ``None``: the user
#: installs the package).
VIS_BACKENDS = {
    'tensorboard': ('TensorboardVisBackend', ('tensorboard', ), 'tracking'),
    'mlflow': ('OODMLflowVisBackend', ('mlflow', ), 'tracking'),
    'wandb': ('WandbVisBackend', ('wandb', ), None),
}

#: The metrics of ``results.json`` sent as scalars.
TRACKED_METRICS = ('auroc', 'ap', 'fpr95', 'siou', 'ppv', 'mean_f1',
                   'component_threshold')

#: Characters of a name that :func:`tracking_name` replaces by another
#: (those of scorer specs such as ``knn:k=10,layer=-1``); any other
#: character outside MLflow's alphabet becomes ``_``.
NAME_REPLACEMENTS = {'=': '-', ',': ':'}

# MLflow's metric-name alphabet: alphanumerics, _ - . space : /
_OUTSIDE_ALPHABET = re.compile(r'[^A-Za-z0-9_\-. :/]')

_VISUALIZERS = itertools.count()


def tracking_name(name: str) -> str:
    """The name a value is tracked under, the same in every backend.

    MLflow refuses metric names with characters other than alphanumerics,
    ``_ - . : /`` and space, and scorer specs hold ``=`` and ``,``
    (``n_energy:eta=1.5``). So: ``=`` becomes ``-``, ``,`` becomes ``:``
    (:data:`NAME_REPLACEMENTS`), any other character outside that alphabet
    ``_``, and every other character stays. Plain names (``msp``,
    ``ood/synthetic_ood/energy/ap``) are unchanged.

    Example:
        >>> tracking_name('ood/d/knn:k=10,layer=-1/ap')
        'ood/d/knn:k-10:layer--1/ap'

    Args:
        name: A scalar's or figure's name.

    Returns:
        str: The tracking name. The rule is not injective for every string
        (``a=b`` and ``a-b`` meet), so :func:`tracking_scalars` refuses
        two names that meet.
    """
    name = ''.join(NAME_REPLACEMENTS.get(c, c) for c in str(name))
    return _OUTSIDE_ALPHABET.sub('_', name)


def tracking_scalars(scalars: Mapping[str, float]) -> Dict[str, float]:
    """``scalars`` by tracking name (:func:`tracking_name`).

    Args:
        scalars: Name -> value.

    Returns:
        dict: Tracking name -> value (a float).

    Raises:
        InvalidValueError: two names have the same tracking name (the
            message names both; rename a scorer or dataset).
    """
    out: Dict[str, float] = {}
    source: Dict[str, str] = {}
    for name, value in scalars.items():
        key = tracking_name(name)
        if key in source and source[key] != name:
            raise InvalidValueError(
                f'tracking names collide: {source[key]!r} and {name!r} both '
                f'become {key!r} (MLflow-safe names: = -> -, , -> :, other '
                'signs -> _); rename one of them')
        source[key] = name
        out[key] = float(value)
    return out


@VISBACKENDS.register_module()
class OODMLflowVisBackend(MLflowVisBackend):
    """mmengine's ``MLflowVisBackend``, every scalar sent under its
    tracking name (:func:`tracking_name`).

    MLflow refuses metric names that mmseg_ood's metrics hold
    (``ood/msp/fpr@tpr0.95``, scorer specs with ``=``); mmengine's
    ``LoggerHook`` sends them as they are during training. This backend
    maps them, as the tools do, so that the names are the same in every
    backend. ``--vis-backend mlflow`` adds it (and turns a config's
    ``MLflowVisBackend`` into it); registered in mmengine's
    ``VISBACKENDS``.

    Args:
        save_dir: As mmengine's ``MLflowVisBackend`` (and the following).
        exp_name: The experiment name (``'Default'``).
        run_name: The run name.
        tags: Tags of the run.
        params: Parameters of the run.
        tracking_uri: The tracking URI (``None``: ``file://<save_dir>``;
            ``--vis-backend mlflow`` sets :func:`mlflow_tracking_uri`).
        artifact_suffix: Files of the work dir uploaded when closed.
        tracked_config_keys: Config keys logged as parameters.
        artifact_location: Where the run's artifacts go.
    """

    def add_scalar(self, name, value, step: int = 0, **kwargs) -> None:
        super().add_scalar(tracking_name(name), value, step, **kwargs)

    def add_scalars(self, scalar_dict: dict, step: int = 0,
                    file_path: Optional[str] = None, **kwargs) -> None:
        super().add_scalars(tracking_scalars(scalar_dict), step, file_path,
                            **kwargs)


#: mmengine's MLflow backend types ``--vis-backend mlflow`` replaces.
_MLFLOW_TYPES = ('MLflowVisBackend', 'OODMLflowVisBackend')


def flat_scalars(tree, prefix: str = '') -> Dict[str, float]:
    """The finite numbers of a nested dict, named by their key path.

    Args:
        tree: Nested dicts; leaves that are finite ints / floats are kept
            (``None``, NaN, booleans, strings and lists are left out).
        prefix: Joined before the keys with ``/``.

    Returns:
        dict: ``<prefix>/<key>/<key>...`` -> value (not yet tracking
        names).
    """
    out: Dict[str, float] = {}
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            out.update(flat_scalars(value, f'{prefix}/{key}' if prefix
                                    else str(key)))
    elif finite_number(tree):
        out[prefix] = float(tree)
    return out


def check_vis_backends(names: Sequence[str]) -> None:
    """Refuse an unknown backend name or one whose package is missing.

    Args:
        names: ``--vis-backend`` names (keys of :data:`VIS_BACKENDS`).

    Raises:
        InvalidValueError: an unknown name (the message lists the known
            ones).
        MissingExtraError: the backend's package is not installed (the
            message names the extra).
    """
    for name in names:
        if name not in VIS_BACKENDS:
            raise InvalidValueError(
                f'unknown visualizer backend {name!r}; known: '
                f'{", ".join(sorted(VIS_BACKENDS))}')
        _, modules, extra = VIS_BACKENDS[name]
        require_extra(extra, f'--vis-backend {name}', modules)


def mlflow_tracking_uri(work_dir: Optional[str]) -> Optional[str]:
    """Where ``--vis-backend mlflow`` tracks: ``$MLFLOW_TRACKING_URI`` if
    set, else the local file store ``file://<work_dir>/mlruns`` (``None``
    without a work dir: mmengine's default, its ``vis_data`` folder).

    Args:
        work_dir: The run's work dir, or ``None``.

    Returns:
        str or None: The tracking URI.

    Raises:
        InvalidValueError: a local file store while MLflow (3.x) refuses
            one: the message says to set ``MLFLOW_ALLOW_FILE_STORE=true``
            or to name a tracking server.
    """
    uri = os.environ.get('MLFLOW_TRACKING_URI')
    if not uri and work_dir:
        uri = 'file://' + osp.join(osp.abspath(work_dir), 'mlruns')
    if uri:
        _check_file_store(uri)
    return uri or None


def _check_file_store(uri: str) -> None:
    scheme = uri.split('://', 1)[0] if '://' in uri else ''
    if scheme not in ('', 'file'):
        return
    try:
        from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE
    except ImportError:  # MLflow 2 takes file stores as they are
        return
    if not MLFLOW_ALLOW_FILE_STORE.get():
        raise InvalidValueError(
            f'--vis-backend mlflow: MLflow refuses the local file store '
            f'{uri} unless MLFLOW_ALLOW_FILE_STORE=true is set; set it, or '
            'set MLFLOW_TRACKING_URI to a tracking server')


def _mlflow_backend(backend: dict, work_dir: Optional[str]) -> dict:
    """An ``MLflowVisBackend`` entry tracking in :func:`mlflow_tracking_uri`
    unless it names its own ``tracking_uri``."""
    if backend.get('tracking_uri'):
        _check_file_store(backend['tracking_uri'])
        return backend
    uri = mlflow_tracking_uri(work_dir)
    if uri:
        backend = dict(backend, tracking_uri=uri)
    return backend


def add_vis_backends(cfg, names: Sequence[str]) -> None:
    """Add mmengine visualizer backends to ``cfg.visualizer`` by name.

    Args:
        cfg: The loaded config (changed in place) before its Runner is
            built; a config without ``visualizer`` gets mmseg's
            ``SegLocalVisualizer``.
        names: Keys of :data:`VIS_BACKENDS`; a backend the config already
            has is not added twice. With ``'mlflow'``, an
            ``MLflowVisBackend`` without ``tracking_uri`` tracks in
            :func:`mlflow_tracking_uri` of ``cfg.work_dir``.

    Raises:
        ValueError: an unknown name (the message lists the known ones), or
            a local MLflow store MLflow refuses.
        MissingExtraError: the backend's package is not installed (the
            message names the extra).
    """
    check_vis_backends(names)
    if not names:
        return
    vis = cfg.get('visualizer')
    if vis is None:
        cfg.visualizer = vis = dict(type='SegLocalVisualizer',
                                    name='visualizer')
    backends = list(vis.get('vis_backends') or [dict(type='LocalVisBackend')])
    if 'mlflow' in names:
        # the config's own MLflow backend, with its settings, maps names
        backends = [dict(b, type='OODMLflowVisBackend')
                    if b.get('type') in _MLFLOW_TYPES else b
                    for b in backends]
    have = {b.get('type') for b in backends}
    for name in names:
        kind = VIS_BACKENDS[name][0]
        if kind not in have:
            backends.append(dict(type=kind))
            have.add(kind)
    if 'mlflow' in names:
        backends = [_mlflow_backend(dict(b), cfg.get('work_dir'))
                    if b.get('type') in _MLFLOW_TYPES else b
                    for b in backends]
    vis['vis_backends'] = backends


@contextlib.contextmanager
def make_visualizer(names: Sequence[str], work_dir: str,
                    config: Optional[dict] = None) -> Iterator:
    """An mmengine ``Visualizer`` with the backends ``names``, for a tool
    that builds no Runner; closed (files flushed, MLflow run ended) on
    exit.

    Args:
        names: Keys of :data:`VIS_BACKENDS` (checked as in
            :func:`add_vis_backends`).
        work_dir: The tool's output folder: the backends write under
            ``<work_dir>/vis_data`` (TensorBoard's event file), and MLflow
            tracks in ``<work_dir>/mlruns`` unless ``MLFLOW_TRACKING_URI``
            is set (:func:`mlflow_tracking_uri`).
        config: The tool's settings, given to the backends as the run's
            config (TensorBoard text, MLflow parameters).

    Yields:
        mmengine.visualization.Visualizer
    """
    check_vis_backends(names)
    from mmengine.config import Config
    from mmengine.visualization import Visualizer
    save_dir = osp.join(work_dir, 'vis_data')
    backends = [dict(type=VIS_BACKENDS[n][0]) for n in dict.fromkeys(names)]
    backends = [_mlflow_backend(b, work_dir)
                if b['type'] in _MLFLOW_TYPES else b for b in backends]
    visualizer = Visualizer(
        name=f'mmseg_ood_tracking_{os.getpid()}_{next(_VISUALIZERS)}',
        vis_backends=backends, save_dir=save_dir)
    # MLflow uploads the .json / .log / .py files under the config's
    # work_dir when closed: only this visualizer's own folder
    visualizer.add_config(Config(dict(config or {}, work_dir=save_dir)))
    try:
        yield visualizer
    finally:
        visualizer.close()


def send_scalars(visualizer, scalars: Mapping[str, float],
                 step: int = 0) -> Dict[str, float]:
    """Send ``scalars`` by tracking name (:func:`tracking_scalars`) through
    ``visualizer.add_scalars``; return what was sent.

    Args:
        visualizer: An mmengine ``Visualizer`` (every backend it holds
            receives them).
        scalars: Name -> value.
        step: The step they are logged at.
    """
    scalars = tracking_scalars(scalars)
    if scalars:
        visualizer.add_scalars(scalars, step=step)
    return scalars


def send_figures(visualizer, figures: Sequence[str], step: int = 0,
                 root: Optional[str] = None,
                 prefix: str = '') -> Dict[str, str]:
    """Send PNG files as images, named ``<prefix><path relative to root>``
    (default: the file name), as tracking names; a file that is missing or
    not an image is skipped. Returns name -> path.

    The name keeps the file's extension: MLflow stores an image as an
    artifact file named so, and refuses a name without one.

    Args:
        visualizer: An mmengine ``Visualizer``.
        figures: Paths of the PNG files.
        step: The step they are logged at.
        root: Names are relative to it (default: the file name alone).
        prefix: Put before each name (``compare/``).
    """
    import cv2
    sent = {}
    for path in figures:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            continue
        name = osp.relpath(path, root) if root else osp.basename(path)
        name = tracking_name(prefix + name.replace(osp.sep, '/'))
        visualizer.add_image(name, image[..., ::-1], step=step)
        sent[name] = path
    return sent


def result_scalars(payload: dict, prefix: str = '') -> Dict[str, float]:
    """The scalars of a ``results.json`` payload, by tracking name.

    Args:
        payload: ``ood_test``'s results (``results`` by dataset and scorer,
            ``id_miou`` by dataset).
        prefix: Put before each name (``compare/<run>/``).

    Returns:
        dict: ``ood/<dataset>/<scorer>/<metric>`` for each metric of
        :data:`TRACKED_METRICS` a scorer has as a finite number, and
        ``id/<dataset>/miou``; values as in ``results.json``.
    """
    out: Dict[str, float] = {}
    for dataset, scorers in (payload.get('results') or {}).items():
        for scorer, metrics in scorers.items():
            for metric in TRACKED_METRICS:
                value = metrics.get(metric)
                if finite_number(value):
                    out[f'{prefix}ood/{dataset}/{scorer}/{metric}'] = \
                        float(value)
    for dataset, miou in (payload.get('id_miou') or {}).items():
        value = miou.get('mIoU') if isinstance(miou, dict) else miou
        if finite_number(value):
            out[f'{prefix}id/{dataset}/miou'] = float(value)
    return tracking_scalars(out)


def robustness_scalars(payload: dict) -> Dict[str, float]:
    """The scalars of a ``robustness.json`` payload, by tracking name:
    per model and cell, ``robustness/<model>/<corruption>/<severity>/
    <metric>`` (``miou``, ``ece``, ``non_distinctiveness``...; the clean
    cell is ``clean/0``, a cell with test-time augmentation's model is
    ``<model>_msc``) and ``robustness/<model>/<corruption>/<severity>/ood/
    <dataset>/<scorer>/<auroc|ap|fpr95>``, fractions as in the file.

    Args:
        payload: ``robustness.json``'s content (its ``cells``).
    """
    out: Dict[str, float] = {}
    for key, cell in (payload.get('cells') or {}).items():
        model, corruption, severity, mode = key.rsplit('|', 3)
        if mode == 'msc':
            model += '_msc'
        out.update(flat_scalars(
            cell, f'robustness/{model}/{corruption}/{severity}'))
    return tracking_scalars(out)


def meta_scalars(payload: dict, prefix: str = '') -> Dict[str, float]:
    """The scalars of a ``meta_results.json`` payload, by tracking name:
    ``meta/<dataset>/<threshold>/<name>`` for every number of a
    threshold's row (``images``, ``msp_auroc``, ``msp_auprc``,
    ``meta_auroc``, ``meta_auprc``, and the detection errors
    ``baseline/<count>`` and ``meta/<count>``).

    Args:
        payload: ``meta_results.json``'s content (its ``results``).
        prefix: Put before each name (``compare/<run>/``).
    """
    out = flat_scalars(payload.get('results') or {}, f'{prefix}meta')
    return tracking_scalars(out)


def calibration_scalars(calibration) -> Dict[str, float]:
    """The scalars of an ``OODCalibration``, by tracking name:
    ``calibration/<scorer>/threshold``, ``calibration/<scorer>/target``
    (the rate asked for, if any) and ``calibration/<scorer>/achieved/
    <rate>[/<bound>]`` for every number of its ``achieved`` rates, and
    ``calibration/<scorer>/data/<images|id_pixels|ood_pixels>``.

    Args:
        calibration: The :class:`~mmseg_ood.formats.threshold_file.
            OODCalibration` ``calibrate_ood`` wrote.
    """
    base = f'calibration/{calibration.scorer_name}'
    out = flat_scalars(dict(threshold=calibration.threshold,
                            target=calibration.target,
                            achieved=dict(calibration.achieved or {}),
                            data=dict(calibration.data or {})), base)
    return tracking_scalars(out)


def comparison_scalars(runs: Mapping[str, dict],
                       segments: bool = False) -> Dict[str, float]:
    """The compared runs' scalars, by tracking name: each run's
    :func:`result_scalars` (``segments``: :func:`meta_scalars`) under
    ``compare/<run>/``.

    Args:
        runs: Run name -> its ``results.json`` (``segments``:
            ``meta_results.json``) content.
        segments: Whether the runs are ``meta_classify`` runs.
    """
    out: Dict[str, float] = {}
    for name, payload in runs.items():
        out.update(meta_scalars(payload, f'compare/{name}/') if segments
                   else result_scalars(payload, f'compare/{name}/'))
    return tracking_scalars(out)


def track_comparison(names: Sequence[str], work_dir: str,
                     runs: Mapping[str, dict], segments: bool = False,
                     figures: Sequence[str] = ()) -> Dict[str, float]:
    """``compare_results --vis-backend``: send the compared runs'
    :func:`comparison_scalars` and the PNG ``figures`` (named
    ``compare/<file name>``) through a :func:`make_visualizer` visualizer
    writing under ``work_dir``; returns the scalars sent.

    Args:
        names: ``--vis-backend`` names.
        work_dir: The folder the backends write under
            (:func:`make_visualizer`).
        runs: See :func:`comparison_scalars`.
        segments: See :func:`comparison_scalars`.
        figures: Files the tool wrote; the PNG ones are sent.
    """
    with make_visualizer(names, work_dir,
                         dict(tool='compare_results', runs=list(runs),
                              segments=segments)) as visualizer:
        scalars = send_scalars(visualizer,
                               comparison_scalars(runs, segments))
        send_figures(visualizer, [f for f in figures
                                  if f.lower().endswith('.png')],
                     prefix='compare/')
    return scalars


def track_results(visualizer, payload: dict,
                  figures: Sequence[str] = (), step: int = 0,
                  root: Optional[str] = None) -> Dict[str, float]:
    """Send a run's scalars and figures through ``visualizer``.

    Args:
        visualizer: The Runner's visualizer (mmengine ``Visualizer``); every
            backend it holds receives them.
        payload: ``results.json``'s content (:func:`result_scalars`).
        figures: PNG files to send as images, named by their path
            relative to ``root`` (default: the file name), extension
            included (:func:`send_figures`).
        step: The step the values are logged at.
        root: See ``figures``.

    Returns:
        dict: The scalars sent.
    """
    scalars = send_scalars(visualizer, result_scalars(payload), step)
    send_figures(visualizer, figures, step, root)
    return scalars
