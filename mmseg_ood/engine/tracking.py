"""Experiment tracking through mmengine's visualizer backends.

A user who tracks runs in TensorBoard, Weights & Biases or MLflow adds the
backend to the config (``vis_backends=[dict(type='TensorboardVisBackend')]``,
mmengine's own classes) or passes ``--vis-backend tensorboard`` to a tool.
The tools then send what they measured through the Runner's visualizer,
so the backend receives it as it receives mmseg's own training logs:

- the scalars of ``results.json``, named ``ood/<dataset>/<scorer>/<metric>``
  (AUROC, AP, FPR95, sIoU, PPV, mean F1 and the component threshold, as the
  fractions ``results.json`` holds) and ``id/<dataset>/miou``;
- the figures the run wrote (ROC / PR curves, score distributions), as
  images named by their file.

No tracker of our own: :func:`add_vis_backends` edits the config's
``visualizer`` before the Runner is built, :func:`track_results` calls the
visualizer's ``add_scalars`` and ``add_image``.
"""
from __future__ import annotations

import math
import os.path as osp
from typing import Dict, Optional, Sequence

from ..errors import InvalidValueError
from ..utils.extras import require_extra

__all__ = ['VIS_BACKENDS', 'add_vis_backends', 'result_scalars',
           'track_results', 'TRACKED_METRICS']

#: ``--vis-backend`` name -> (mmengine's backend type, the modules it
#: imports, the package's extra that installs them or ``None``: the user
#: installs the package).
VIS_BACKENDS = {
    'tensorboard': ('TensorboardVisBackend', ('tensorboard', ), 'tracking'),
    'mlflow': ('MLflowVisBackend', ('mlflow', ), None),
    'wandb': ('WandbVisBackend', ('wandb', ), None),
}

#: The metrics of ``results.json`` sent as scalars.
TRACKED_METRICS = ('auroc', 'ap', 'fpr95', 'siou', 'ppv', 'mean_f1',
                   'component_threshold')


def add_vis_backends(cfg, names: Sequence[str]) -> None:
    """Add mmengine visualizer backends to ``cfg.visualizer`` by name.

    Args:
        cfg: The loaded config (changed in place) before its Runner is
            built; a config without ``visualizer`` gets mmseg's
            ``SegLocalVisualizer``.
        names: Keys of :data:`VIS_BACKENDS`; a backend the config already
            has is not added twice.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
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
    if not names:
        return
    vis = cfg.get('visualizer')
    if vis is None:
        cfg.visualizer = vis = dict(type='SegLocalVisualizer',
                                    name='visualizer')
    backends = list(vis.get('vis_backends') or [dict(type='LocalVisBackend')])
    have = {b.get('type') for b in backends}
    for name in names:
        kind = VIS_BACKENDS[name][0]
        if kind not in have:
            backends.append(dict(type=kind))
            have.add(kind)
    vis['vis_backends'] = backends


def result_scalars(payload: dict) -> Dict[str, float]:
    """The scalars of a ``results.json`` payload, by tracking name.

    Args:
        payload: ``ood_test``'s results (``results`` by dataset and scorer,
            ``id_miou`` by dataset).

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
                if _finite(value):
                    out[f'ood/{dataset}/{scorer}/{metric}'] = float(value)
    for dataset, miou in (payload.get('id_miou') or {}).items():
        value = miou.get('mIoU') if isinstance(miou, dict) else miou
        if _finite(value):
            out[f'id/{dataset}/miou'] = float(value)
    return out


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(
        value, bool) and math.isfinite(value)


def track_results(visualizer, payload: dict,
                  figures: Sequence[str] = (), step: int = 0,
                  root: Optional[str] = None) -> Dict[str, float]:
    """Send a run's scalars and figures through ``visualizer``.

    Args:
        visualizer: The Runner's visualizer (mmengine ``Visualizer``); every
            backend it holds receives them.
        payload: ``results.json``'s content (:func:`result_scalars`).
        figures: PNG files to send as images, named by their path
            relative to ``root`` (default: the file name).
        step: The step the values are logged at.
        root: See ``figures``.

    Returns:
        dict: The scalars sent.
    """
    import cv2
    scalars = result_scalars(payload)
    if scalars:
        visualizer.add_scalars(scalars, step=step)
    for path in figures:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            continue
        name = osp.relpath(path, root) if root else osp.basename(path)
        visualizer.add_image(osp.splitext(name)[0].replace(osp.sep, '/'),
                             image[..., ::-1], step=step)
    return scalars
