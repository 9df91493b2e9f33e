"""Per-image heatmaps of the OOD scores."""
from __future__ import annotations

import math
import os
import os.path as osp
from typing import Dict, Literal, Optional, Sequence, Tuple

import numpy as np
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...errors import InvalidTypeError, InvalidValueError
from ...evaluation.functional import pixel_ood_metrics
from ...labels import ID_LABEL, IGNORE_INDEX, OOD_LABEL
from ...reports.results import percent, save_figure
from ...utils.arguments import strict_arguments

__all__ = ['OODVisualizationHook', 'heatmap_figure', 'heatmap_grid',
           'prediction_palette',
           'image_metrics', 'normalize_min_max', 'save_heatmap',
           'score_range', 'GT_COLOR', 'VOID_COLOR', 'SCALES']

#: Colour of the OOD ground-truth contour (apart from ``inferno``'s
#: black-red-yellow and from the usual class palettes).
GT_COLOR = '#00e5ff'
#: Colour of the contour around ignored (void) pixels.
VOID_COLOR = '#b0b0b0'
#: Accepted values of ``scale``.
SCALES = ('image', 'shared')


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


def score_range(score: np.ndarray) -> Tuple[float, float]:
    """The smallest and largest finite value of a score map (``(0, 1)``
    when it has none); a constant map gets a range of width 1 above its
    value, so it is drawn at the bottom of the colour map, as
    :func:`normalize_min_max` maps it to 0.

    Args:
        score: A score map, any shape.

    Returns:
        tuple: ``(lo, hi)`` with ``lo < hi``.
    """
    finite = np.asarray(score, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def prediction_palette(palette, pred: np.ndarray):
    """``palette``, or fixed random colours (seed 0) where it is missing
    or has fewer colours than ``pred``'s classes.

    Args:
        palette: Class colours, ``(R, G, B)`` by class, or ``None``.
        pred: The predicted class map, integer class indices.

    Returns:
        The colours to draw ``pred`` with.
    """
    if palette is None or len(palette) <= int(pred.max()):
        rng = np.random.default_rng(0)
        palette = rng.integers(0, 255, (int(pred.max()) + 1, 3))
    return palette


def image_metrics(score: np.ndarray, ood_label: Optional[np.ndarray]
                  ) -> Optional[Dict[str, float]]:
    """One image's AP and FPR95 of one score, or ``None`` where undefined.

    Computed by :func:`~mmseg_ood.evaluation.pixel_ood_metrics` (the
    SMIYC / scikit-learn definitions, void pixels left out), as the
    per-image metrics of :class:`~mmseg_ood.evaluation.OODMetric` are.

    Args:
        score: ``(H, W)`` score map, higher = more OOD.
        ood_label: ``(H, W)`` OOD ground truth (``ID_LABEL``,
            ``OOD_LABEL``, ``IGNORE_INDEX``), or ``None``.

    Returns:
        dict or None: ``ap`` and ``fpr95`` (fractions); ``None`` without
        ground truth, when the image lacks ID or OOD pixels, when its
        labels are not OOD labels (other values than 0, 1 and 255), when
        the shapes differ, or when a non-void score is NaN / Inf.
    """
    if ood_label is None or np.shape(score) != np.shape(ood_label):
        return None
    labels = np.asarray(ood_label)
    if not np.isin(labels, (ID_LABEL, OOD_LABEL, IGNORE_INDEX)).all():
        return None
    if not ((labels == OOD_LABEL).any() and (labels == ID_LABEL).any()):
        return None
    try:
        m = pixel_ood_metrics(score, labels, name='heatmap score')
    except InvalidValueError:  # NaN / Inf on a non-void pixel
        return None
    return dict(ap=m['ap'], fpr95=m['fpr95'])


def heatmap_grid(num_panels: int, max_cols: int = 4) -> Tuple[int, int]:
    """Rows and columns of the heatmap grid: ``num_panels`` in rows of at
    most ``max_cols``; the widest column count of at least 3 that divides
    it (no empty cell), else the one that leaves the shortest gap in the
    last row, which :func:`heatmap_figure` centres.

    Args:
        num_panels: Number of panels (>= 1).
        max_cols: The most panels in a row (>= 3).

    Returns:
        tuple: ``(rows, cols)``.
    """
    if num_panels <= max_cols:
        return 1, num_panels
    cols = min(range(max_cols, 2, -1),
               key=lambda c: -num_panels % c)  # first of equal gaps: widest
    return math.ceil(num_panels / cols), cols


def _outline(ax, ood_label: Optional[np.ndarray]) -> None:
    """The OOD ground truth as a contour, void pixels hatched inside a
    dashed grey contour."""
    if ood_label is None or min(ood_label.shape) < 2:
        return  # contour needs a 2 x 2 grid
    ood = (ood_label == OOD_LABEL).astype(np.float32)
    void = (ood_label == IGNORE_INDEX).astype(np.float32)
    if void.any() and not void.all():
        ax.contourf(void, levels=[0.5, 1.5], colors='none',
                    hatches=['////'])
        ax.contour(void, levels=[0.5], colors=VOID_COLOR, linewidths=1.0,
                   linestyles='dashed')
    if ood.any() and not ood.all():
        ax.contour(ood, levels=[0.5], colors=GT_COLOR, linewidths=1.4)


def heatmap_figure(image: np.ndarray, pred: np.ndarray, palette,
                   scores: Dict[str, np.ndarray],
                   ood_label: Optional[np.ndarray] = None,
                   ranges: Optional[Dict[str, Sequence[float]]] = None,
                   max_cols: int = 4):
    """The heatmap figure of one image: image | prediction | one panel per
    score, the OOD ground truth outlined on every panel.

    Each score panel has its colour bar in the score's own units
    (``inferno``, bright = high = more OOD) and, where the image has both
    ID and OOD pixels, its per-image AP and FPR95 in the title
    (:func:`image_metrics`). By default a score is drawn over its range on
    this image (lowest value black, highest white): the per-image min-max
    normalization of thesis eq. 5.5 (:func:`normalize_min_max`), the
    colour bar showing the raw values it maps. ``ranges`` fixes a
    scorer's range instead (values outside it take the end colours; the
    colour bar's arrows say so), so that its panels compare across
    images.

    The panels fill a grid of :func:`heatmap_grid` (no empty cell: a
    shorter last row is centred); the contour key is a legend above the
    panels.

    Args:
        image: The input image, ``(H, W, 3)`` uint8 RGB.
        pred: The predicted class map, ``(H, W)`` integer class indices.
        palette: Class colours, a sequence of ``(R, G, B)`` triples indexed
            by class (at least ``pred.max() + 1`` of them).
        scores: Score maps by scorer name, each ``(H, W)``.
        ood_label: The OOD ground truth, ``(H, W)`` (``OOD_LABEL`` outlined
            in cyan, ``IGNORE_INDEX`` hatched inside a dashed grey line),
            or ``None``.
        ranges: Scorer -> ``(lo, hi)`` colour range; scorers not in it
            use their range on this image.
        max_cols: The most panels in a row.

    Returns:
        matplotlib.figure.Figure: The figure (close it, or save it with
        :func:`~mmseg_ood.reports.results.save_figure`).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec
    from matplotlib.lines import Line2D
    ranges = ranges or {}
    h, w = pred.shape
    n = 2 + len(scores)
    rows, cols = heatmap_grid(n, max_cols)
    panel_w = 4.2
    # room for a two-line title and a horizontal colour bar per row
    fig = plt.figure(figsize=(cols * panel_w,
                              rows * (panel_w * h / w + 1.2) + 0.4),
                     layout='constrained')
    # two grid columns per panel, so that a shorter last row is centred
    grid = GridSpec(rows, 2 * cols, figure=fig)
    axes = []
    for i in range(n):
        r, c = divmod(i, cols)
        in_row = min(cols, n - r * cols)
        start = 2 * c + (cols - in_row)
        axes.append(fig.add_subplot(grid[r, start:start + 2]))
    colours = np.asarray(palette, np.uint8)
    base = [('image', image), ('prediction', colours[pred])]
    for ax, (title, data) in zip(axes, base):
        ax.imshow(data, interpolation='nearest')
        ax.set_title(title, fontsize=11)
    for ax, (name, score) in zip(axes[2:], scores.items()):
        score = np.asarray(score, np.float64)
        shared = name in ranges
        lo, hi = (float(v) for v in ranges[name]) if shared else \
            score_range(score)
        im = ax.imshow(np.ma.masked_invalid(score), cmap='inferno',
                       vmin=lo, vmax=hi, interpolation='nearest')
        m = image_metrics(score, ood_label)
        title = name if m is None else \
            f'{name}\nAP {percent(m["ap"])} %, FPR95 ' \
            f'{percent(m["fpr95"])} %'
        ax.set_title(title, fontsize=11)
        bar = fig.colorbar(im, ax=ax, location='bottom', shrink=0.9,
                           aspect=25, pad=0.02,
                           extend='both' if shared else 'neither')
        ticks = [lo, (lo + hi) / 2, hi]
        # the values themselves: no offset text beside the bar (a narrow
        # range around a large value would otherwise print "-1.796" over
        # the label)
        bar.set_ticks(ticks, labels=[_tick(v, hi - lo) for v in ticks])
        bar.ax.tick_params(labelsize=9)
        bar.set_label('score, fixed range' if shared else
                      'score, this image from min to max', fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        _outline(ax, ood_label)
    if ood_label is not None:
        key = [Line2D([], [], color=GT_COLOR, lw=2,
                      label='OOD ground truth')]
        if (ood_label == IGNORE_INDEX).any():
            key.append(Line2D([], [], color=VOID_COLOR, lw=1.5, ls='--',
                              label='ignored pixels (hatched)'))
        fig.legend(handles=key, loc='outside upper center', ncol=len(key),
                   fontsize=10, frameon=False)
    return fig


def _tick(value: float, span: float) -> str:
    """A colour-bar tick label: enough digits to tell the bar's ends
    apart (``span`` = its range), no offset."""
    if span > 0 and np.isfinite(span) and value:
        digits = int(np.ceil(np.log10(abs(value)) - np.log10(span))) + 2
    else:
        digits = 4
    return f'{value:.{min(max(digits, 3), 10)}g}'


def save_heatmap(path: str, image: np.ndarray, pred: np.ndarray,
                 palette, scores: dict, ood_label: Optional[np.ndarray],
                 ranges: Optional[Dict[str, Sequence[float]]] = None,
                 dpi: int = 100) -> str:
    """Write the heatmap of one image (:func:`heatmap_figure`) as a PNG,
    atomically (:func:`~mmseg_ood.reports.results.save_figure`).

    Args:
        path: The PNG file written (its folder must exist).
        image: The input image, ``(H, W, 3)`` uint8 RGB.
        pred: The predicted class map, ``(H, W)`` integer class indices.
        palette: Class colours, ``(R, G, B)`` triples indexed by class.
        scores: Score maps by scorer name, each ``(H, W)``.
        ood_label: The OOD ground truth, ``(H, W)``, or ``None``.
        ranges: Scorer -> fixed ``(lo, hi)`` colour range (default: each
            score's range on this image, thesis eq. 5.5).
        dpi: Resolution of the PNG.

    Returns:
        str: ``path``.
    """
    fig = heatmap_figure(image, pred, palette, scores, ood_label, ranges)
    return save_figure(fig, path, dpi=dpi, tight=False)


@HOOKS.register_module()
@strict_arguments
class OODVisualizationHook(Hook):
    """Saves heatmaps of the first ``num`` test images (rank 0).

    One PNG per image (:func:`heatmap_figure`): the image and the
    prediction, then one panel per score with its colour bar and, where
    the image has ID and OOD pixels, its AP and FPR95 on that image; the
    OOD ground truth is outlined on every panel.

    Args:
        out_dir: Directory for ``<image stem>.png``.
        num: Number of images.
        palette: Class colours for the prediction (default: the model's
            ``dataset_meta``).
        scale: Colour range of the score panels. ``'image'`` (default):
            each score over its own range on each image, the per-image
            min-max normalization of thesis eq. 5.5 (the colour bar shows
            the raw values). ``'shared'``: one range per scorer for every
            image, so that panels compare across images: the range in
            ``score_ranges``, else the scorer's range on the first image
            drawn (values outside it take the end colours).
        score_ranges: Scorer name -> ``(lo, hi)``, the fixed range of that
            scorer with ``scale='shared'`` (ignored with ``'image'``).
        dpi: Resolution of the PNGs.

    Raises:
        ValueError: ``num`` is not an int >= 0, ``scale`` is not one of
            ``'image'`` / ``'shared'``, a range is not two finite numbers
            ``lo < hi``, ``dpi`` is not an int >= 10.
    """

    def __init__(self, out_dir: str, num: int = 10, palette=None,
                 scale: Literal['image', 'shared'] = 'image',
                 score_ranges: Optional[Dict[str, Sequence[float]]] = None,
                 dpi: int = 100):
        if not isinstance(num, int) or num < 0:
            raise InvalidValueError(f'`num` must be an int >= 0, got {num!r}')
        if scale not in SCALES:
            raise InvalidValueError(
                f'`scale` must be one of {SCALES}, got {scale!r}')
        if not isinstance(dpi, int) or dpi < 10:
            raise InvalidValueError(f'`dpi` must be an int >= 10, got {dpi!r}')
        if score_ranges is not None and not isinstance(score_ranges, dict):
            raise InvalidTypeError('`score_ranges` must be a dict of scorer '
                                   '-> (lo, hi), got '
                                   f'{type(score_ranges).__name__}')
        ranges = {}
        for name, r in (score_ranges or {}).items():
            try:
                lo, hi = (float(v) for v in r)
            except (TypeError, ValueError):
                lo = hi = float('nan')
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise InvalidValueError(
                    f'`score_ranges[{name!r}]` must be two finite numbers '
                    f'lo < hi, got {r!r}')
            ranges[name] = (lo, hi)
        self.out_dir = out_dir
        self.num = num
        self.palette = palette
        self.scale = scale
        self.score_ranges = ranges
        self.dpi = dpi
        self._ranges: Dict[str, Tuple[float, float]] = {}
        self._done = 0

    def before_test(self, runner) -> None:
        self._done = 0
        self._ranges = dict(self.score_ranges)
        if self.palette is None:
            meta = getattr(runner.model, 'dataset_meta', None) or {}
            self.palette = meta.get('palette')

    def _image_ranges(self, scores: Dict[str, np.ndarray]
                      ) -> Optional[Dict[str, Tuple[float, float]]]:
        """The fixed ranges for this image (``scale='shared'``): a scorer
        seen for the first time keeps its range on this image."""
        if self.scale != 'shared':
            return None
        for name, s in scores.items():
            self._ranges.setdefault(name, score_range(s))
        return self._ranges

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
            palette = prediction_palette(self.palette, pred)
            label = None
            if 'gt_sem_seg' in sample:
                label = sample.gt_sem_seg.data.squeeze(0).cpu().numpy()
            scores = {
                n: s.cpu().numpy()
                for n, s in sample.get('ood_scores', {}).items()
            }
            stem = osp.splitext(osp.basename(sample.img_path))[0]
            save_heatmap(osp.join(self.out_dir, f'{stem}.png'), image, pred,
                         palette, scores, label, self._image_ranges(scores),
                         dpi=self.dpi)
            self._done += 1
