"""Runner hook: the OOD figures of each validation, sent to the trackers."""
from __future__ import annotations

import os.path as osp
import tempfile
from typing import List, Optional, Tuple

import numpy as np
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...errors import InvalidTypeError, InvalidValueError
from ...evaluation import OODMetric
from ...utils.arguments import strict_arguments
from ..tracking import tracking_name
from .ood_visualization_hook import normalize_min_max


@HOOKS.register_module()
@strict_arguments
class OODTrackingHook(Hook):
    """Send the ROC / PR curves and a few score heatmaps of each
    validation through the Runner's visualizer (every backend of
    ``visualizer.vis_backends``: TensorBoard, MLflow, W&B, local files).

    The scalars need no hook: mmengine's ``LoggerHook`` already sends what
    the validation metrics return, so an :class:`~mmseg_ood.evaluation.
    OODMetric` in ``val_evaluator`` (with an ``OODScoringHook(val=True)``)
    reaches the trackers as ``ood/<scorer>/<metric>`` at the training
    iteration. This hook adds the figures, at the same step
    (``runner.iter``), named as tracking names
    (:func:`~mmseg_ood.engine.tracking.tracking_name`):

    - ``val/ood_curves/<dataset>_roc.png`` and ``<dataset>_pr.png``: every
      scorer's ROC and precision-recall curve, per ``OODMetric`` of the
      validation (``<dataset>``: its ``dataset_name``, else ``val``);
    - ``val/ood_heatmaps/<n>.png`` for the first ``num_heatmaps``
      validation images: the image, then each score map min-max
      normalized (thesis eq. 5.5, ``inferno``: bright = more OOD).

    Only rank 0 draws.

    Args:
        curves: Send the ROC / PR curves.
        num_heatmaps: How many validation images' heatmaps to send (0:
            none).

    Example:
        >>> custom_hooks = [
        ...     dict(type='OODScoringHook', scorers=['msp', 'energy'],
        ...          val=True),
        ...     dict(type='OODTrackingHook', num_heatmaps=2)]
    """
    priority = 'LOW'

    def __init__(self, curves: bool = True, num_heatmaps: int = 2):
        if not isinstance(curves, bool):
            raise InvalidTypeError(
                f'`curves` must be a bool, got {curves!r}')
        if isinstance(num_heatmaps, bool) or not isinstance(
                num_heatmaps, int) or num_heatmaps < 0:
            raise InvalidValueError(
                f'`num_heatmaps` must be an int >= 0, got {num_heatmaps!r}')
        self.curves = curves
        self.num_heatmaps = num_heatmaps
        self._heatmaps: List[np.ndarray] = []

    def before_val_epoch(self, runner) -> None:
        self._heatmaps = []

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs=None) -> None:
        if get_rank() != 0 or len(self._heatmaps) >= self.num_heatmaps:
            return
        for sample in outputs or ():
            if len(self._heatmaps) >= self.num_heatmaps:
                break
            panel = self._heatmap(sample)
            if panel is not None:
                self._heatmaps.append(panel)

    @staticmethod
    def _heatmap(sample) -> Optional[np.ndarray]:
        """image | one min-max normalized panel per score, ``(H, W', 3)``
        RGB uint8; ``None`` without scores."""
        import cv2
        scores = getattr(sample, 'ood_scores', None) or {}
        if not scores:
            return None
        maps = [np.asarray(v.detach().cpu().float() if hasattr(v, 'detach')
                           else v, np.float32).squeeze()
                for v in scores.values()]
        h, w = maps[0].shape[-2:]
        image = None
        path = sample.metainfo.get('img_path')
        if path and osp.isfile(path):
            image = cv2.imread(path, cv2.IMREAD_COLOR)
        panels = []
        if image is not None:
            panels.append(cv2.resize(image, (w, h))[..., ::-1])
        for m in maps:
            m = np.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0)
            gray = (normalize_min_max(m) * 255).astype(np.uint8)
            colour = cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO)
            panels.append(cv2.resize(colour, (w, h))[..., ::-1])
        return np.ascontiguousarray(np.concatenate(panels, axis=1))

    def _curve_images(self, runner) -> List[Tuple[str, np.ndarray]]:
        """``(name, RGB image)`` of each OOD metric's ROC / PR curves."""
        import cv2

        from ...reports.results import plot_roc_pr
        out = []
        metrics = getattr(getattr(runner.val_loop, 'evaluator', None),
                          'metrics', ())
        for metric in metrics:
            if not isinstance(metric, OODMetric) or not metric.last_pixel:
                continue
            dataset = metric.dataset_name or 'val'
            with tempfile.TemporaryDirectory() as tmp:
                paths = plot_roc_pr(tmp, dataset, metric.last_pixel,
                                    metric.last_results or {})
                for kind in ('roc', 'pr'):
                    image = cv2.imread(paths[kind], cv2.IMREAD_COLOR)
                    if image is not None:
                        out.append((f'{dataset}_{kind}.png',
                                    image[..., ::-1].copy()))
        return out

    def after_val_epoch(self, runner, metrics=None) -> None:
        if get_rank() != 0:
            return
        step = runner.iter
        visualizer = runner.visualizer
        if self.curves:
            for name, image in self._curve_images(runner):
                visualizer.add_image(tracking_name(f'val/ood_curves/{name}'),
                                     image, step=step)
        for i, image in enumerate(self._heatmaps):
            visualizer.add_image(f'val/ood_heatmaps/{i}.png', image,
                                 step=step)
        self._heatmaps = []
