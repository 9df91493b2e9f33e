"""Per-image heatmaps of the OOD scores."""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional

import numpy as np
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX, OOD_LABEL
from ...utils.arguments import strict_arguments


def normalize_min_max(score: np.ndarray) -> np.ndarray:
    """Per-image min-max normalization to [0, 1] (thesis eq. 5.5); a
    constant map becomes zeros.

    ``s_n = (s - min s) / (max s - min s)``, the extremes taken over the
    pixels of the one map.

    Args:
        score: One image's score map, ``(H, W)``, any real dtype.

    Returns:
        np.ndarray: ``(H, W)`` float32 in [0, 1].

    References:
        Norm-decoupling thesis, sec. 5.5 "Qualitative Experiments",
        eq. 5.5.
    """
    lo, hi = float(score.min()), float(score.max())
    if hi <= lo:
        return np.zeros_like(score, dtype=np.float32)
    return ((score - lo) / (hi - lo)).astype(np.float32)


def save_heatmap(path: str, image: np.ndarray, pred: np.ndarray,
                 palette, scores: dict, ood_label: Optional[np.ndarray]
                 ) -> None:
    """One PNG: image | prediction | OOD ground truth | one panel per score
    (min-max normalized per image, thesis eq. 5.5).

    Panels are laid out in rows of at most 4; the scores are drawn with
    the ``inferno`` colour map (bright = high = more OOD).

    Args:
        path: The PNG file written (its folder must exist).
        image: The input image, ``(H, W, 3)`` uint8 RGB.
        pred: The predicted class map, ``(H, W)`` integer class indices.
        palette: Class colours, a sequence of ``(R, G, B)`` triples indexed
            by class (at least ``pred.max() + 1`` of them).
        scores: Score maps by scorer name, each ``(H, W)``; normalized by
            :func:`normalize_min_max`.
        ood_label: The OOD ground truth, ``(H, W)`` (OOD pixels red, ignored
            pixels grey), or ``None`` to leave that panel out.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [('image', image), ('prediction',
                                 np.asarray(palette, np.uint8)[pred])]
    if ood_label is not None:
        gt = np.zeros(ood_label.shape + (3, ), np.uint8)
        gt[ood_label == OOD_LABEL] = (255, 64, 64)
        gt[ood_label == IGNORE_INDEX] = (96, 96, 96)
        panels.append(('OOD ground truth', gt))
    panels += [(name, normalize_min_max(s)) for name, s in scores.items()]
    cols = min(4, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    h, w = pred.shape
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4, rows * 4 * h / w
                                                  + 0.4 * rows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis('off')
    for ax, (title, data) in zip(axes.ravel(), panels):
        if data.ndim == 2:
            ax.imshow(data, cmap='inferno', vmin=0, vmax=1)
        else:
            ax.imshow(data)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


@HOOKS.register_module()
@strict_arguments
class OODVisualizationHook(Hook):
    """Saves heatmaps of the first ``num`` test images (rank 0).

    Args:
        out_dir: Directory for ``<image stem>.png``.
        num: Number of images.
        palette: Class colours for the prediction (default: the model's
            ``dataset_meta``).
    """

    def __init__(self, out_dir: str, num: int = 10, palette=None):
        if not isinstance(num, int) or num < 0:
            raise InvalidValueError(f'`num` must be an int >= 0, got {num!r}')
        self.out_dir = out_dir
        self.num = num
        self.palette = palette
        self._done = 0

    def before_test(self, runner) -> None:
        self._done = 0
        if self.palette is None:
            meta = getattr(runner.model, 'dataset_meta', None) or {}
            self.palette = meta.get('palette')

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        if get_rank() != 0 or self._done >= self.num:
            return
        import mmcv
        os.makedirs(self.out_dir, exist_ok=True)
        for sample in outputs:
            if self._done >= self.num:
                return
            image = mmcv.imread(sample.img_path, channel_order='rgb')
            pred = sample.pred_sem_seg.data.squeeze(0).cpu().numpy()
            palette = self.palette
            if palette is None or len(palette) <= int(pred.max()):
                rng = np.random.default_rng(0)
                palette = rng.integers(0, 255, (int(pred.max()) + 1, 3))
            label = None
            if 'gt_sem_seg' in sample:
                label = sample.gt_sem_seg.data.squeeze(0).cpu().numpy()
            scores = {
                n: s.cpu().numpy()
                for n, s in sample.get('ood_scores', {}).items()
            }
            stem = osp.splitext(osp.basename(sample.img_path))[0]
            save_heatmap(osp.join(self.out_dir, f'{stem}.png'), image, pred,
                         palette, scores, label)
            self._done += 1
