"""The figures lay out cleanly: measured, not looked at.

Each figure function is drawn with small synthetic data and its Figure
kept (``plt.close`` made a no-op while it runs, so the figure is checked
as it was saved, after its layout). Then, from matplotlib's bounding boxes
on the rendered canvas:

- every visible text lies inside the figure;
- a suptitle overlaps no axes (its panel titles, ticks and labels
  included), a panel title no other axes;
- a legend of the heatmap overlaps no image panel;
- the heatmap has no blank or hidden axes, one colour bar per score
  panel, and its panel titles carry the AP of
  ``sklearn.metrics.average_precision_score`` on that image.

``test_the_overlap_check_catches_a_suptitle_on_the_axes`` shows the check
fails where it must (the auto-correlation figure as it was drawn before:
no layout engine, the suptitle over the panel titles).
"""
import re
from types import SimpleNamespace

import numpy as np
import pytest

matplotlib = pytest.importorskip('matplotlib')
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.text import Text  # noqa: E402

#: Pixels two boxes may share before they count as overlapping
#: (antialiased edges touch).
TOLERANCE = 1.0


# --- measuring ---------------------------------------------------------------
@pytest.fixture
def kept_figures(monkeypatch):
    """Call a figure function and return the Figures it made, left open."""
    made = []

    def draw(fn, *args, **kwargs):
        before = set(plt.get_fignums())
        monkeypatch.setattr(plt, 'close', lambda *a, **k: None)
        try:
            fn(*args, **kwargs)
        finally:
            monkeypatch.undo()
        figs = [plt.figure(n) for n in plt.get_fignums() if n not in before]
        made.extend(figs)
        assert figs, f'{fn.__name__} drew no figure'
        return figs

    yield draw
    for fig in made:
        plt.close(fig)


def _renderer(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _overlap(a, b) -> bool:
    """Do two display-space boxes share more than ``TOLERANCE`` pixels
    both ways?"""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w > TOLERANCE and h > TOLERANCE


def _texts(fig):
    """The figure's visible texts but tick labels (matplotlib keeps
    undrawn ones outside the view; the axes' tight boxes cover the drawn
    ones)."""
    found = list(fig.texts) + [t for legend in fig.legends
                               for t in legend.get_texts()]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        found += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        if ax.get_legend() is not None:
            found += ax.get_legend().get_texts()
    return [t for t in found if isinstance(t, Text) and t.get_visible()
            and t.get_text().strip()]


def _colorbar(ax) -> bool:
    return ax.get_label() == '<colorbar>'


def layout_problems(fig, image_axes=()):
    """What is wrong with ``fig``'s layout, as readable lines (empty: none).

    Args:
        fig: A drawn figure.
        image_axes: Axes no legend may cover (image panels).
    """
    renderer = _renderer(fig)
    box = fig.bbox
    problems = []
    for t in _texts(fig):
        e = t.get_window_extent(renderer)
        if (e.x0 < box.x0 - TOLERANCE or e.y0 < box.y0 - TOLERANCE
                or e.x1 > box.x1 + TOLERANCE or e.y1 > box.y1 + TOLERANCE):
            problems.append(f'text {t.get_text()!r} outside the figure')
    axes = [a for a in fig.axes if a.get_visible()]
    tight = {a: a.get_tightbbox(renderer) for a in axes}
    for a, b in tight.items():
        if (b.x0 < box.x0 - TOLERANCE or b.y0 < box.y0 - TOLERANCE
                or b.x1 > box.x1 + TOLERANCE or b.y1 > box.y1 + TOLERANCE):
            problems.append(f'axes {a.get_title()!r} outside the figure')
    suptitle = fig._suptitle  # the public get_suptitle() has no artist
    if suptitle is not None and suptitle.get_text():
        s = suptitle.get_window_extent(renderer)
        for a, b in tight.items():
            if _overlap(s, b):
                problems.append(f'suptitle {suptitle.get_text()!r} '
                                f'overlaps axes {a.get_title()!r}')
    for a in axes:
        title = a.title
        if not title.get_text():
            continue
        t = title.get_window_extent(renderer)
        for other in axes:
            if other is not a and _overlap(t, other.get_window_extent(
                    renderer)):
                problems.append(f'title {title.get_text()!r} overlaps '
                                f'axes {other.get_title()!r}')
    legends = list(fig.legends) + [a.get_legend() for a in axes
                                   if a.get_legend() is not None]
    for legend in legends:
        e = legend.get_window_extent(renderer)
        for a in image_axes:
            if _overlap(e, a.get_window_extent(renderer)):
                problems.append(f'a legend overlaps image {a.get_title()!r}')
    return problems


# --- synthetic inputs --------------------------------------------------------
def _street(seed=0, h=48, w=96):
    """An image, its prediction, its OOD labels (an OOD disc, a void band
    at the top) and four score maps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 30) ** 2 + (xx - 60) ** 2 < 8 ** 2
    image = np.zeros((h, w, 3), np.uint8)
    image[:h // 2] = (120, 170, 220)
    image[h // 2:] = (70, 70, 70)
    image[disc] = (200, 40, 200)
    pred = np.zeros((h, w), np.int64)
    pred[h // 2:] = 1
    label = np.zeros((h, w), np.uint8)
    label[disc] = 1
    label[:4] = 255
    scores = {name: (rng.normal(0, 1, (h, w)) + k * disc - 3 * k
                     ).astype(np.float32)
              for k, name in enumerate(('msp', 'entropy', 'energy',
                                        'norm'), 1)}
    return image, pred, label, scores


PALETTE = [(128, 64, 128), (70, 70, 70), (220, 20, 60)]


def _distribution(seed):
    from mmseg_ood.evaluation.accumulators.score_distribution import \
        ScoreDistribution
    rng = np.random.default_rng(seed)
    ood, idd = rng.normal(0.6, 0.15, 500), rng.beta(1.2, 6.0, 3000)
    scores = np.concatenate([idd, ood]).astype(np.float32)
    labels = np.r_[np.zeros(idd.size), np.ones(ood.size)].astype(np.uint8)
    return scores, labels, ScoreDistribution.from_scores(scores, labels,
                                                         num_bins=32)


# --- the heatmap -------------------------------------------------------------
def _panels(fig):
    return [a for a in fig.axes if not _colorbar(a)]


@pytest.mark.parametrize('num_scores', [1, 2, 3, 4, 5, 7])
def test_heatmap_fills_its_grid_with_a_colour_bar_per_score(num_scores):
    from mmseg_ood.engine.hooks.ood_visualization_hook import heatmap_figure
    image, pred, label, scores = _street()
    scores = {f'{n}{i}': s for i, (n, s) in enumerate(
        list(scores.items()) * 2) if i < num_scores}
    fig = heatmap_figure(image, pred, PALETTE, scores, label)
    try:
        renderer = _renderer(fig)
        panels = _panels(fig)
        assert all(a.get_visible() and a.axison for a in fig.axes)
        # every panel shows a picture: no blank cell
        assert len(panels) == 2 + num_scores
        assert all(a.get_images() for a in panels)
        bars = [a for a in fig.axes if _colorbar(a)]
        assert len(bars) == num_scores
        # each colour bar in the units of its own panel's score
        for a, (name, s) in zip(panels[2:], scores.items()):
            lo, hi = a.get_images()[0].get_clim()
            assert (lo, hi) == (pytest.approx(float(s.min())),
                                pytest.approx(float(s.max())))
        # no panel on another
        boxes = [a.get_window_extent(renderer) for a in panels]
        for i, b in enumerate(boxes):
            assert not any(_overlap(b, c) for c in boxes[i + 1:])
        assert layout_problems(fig, image_axes=panels) == []
    finally:
        plt.close(fig)


def test_heatmap_titles_carry_sklearn_ap_of_the_image():
    from sklearn.metrics import average_precision_score

    from mmseg_ood.engine.hooks.ood_visualization_hook import heatmap_figure
    image, pred, label, scores = _street(seed=1)
    fig = heatmap_figure(image, pred, PALETTE, scores, label)
    try:
        valid = label != 255
        for a, (name, s) in zip(_panels(fig)[2:], scores.items()):
            title = a.get_title()
            assert title.startswith(name)
            got = re.search(r'AP (\d+\.\d\d) %', title)
            assert got, title
            expected = average_precision_score(label[valid], s[valid])
            assert abs(float(got.group(1)) - 100 * expected) <= 0.005 + 1e-9
            assert re.search(r'FPR95 \d+\.\d\d %', title), title
    finally:
        plt.close(fig)


def test_heatmap_without_both_classes_has_no_metrics():
    from mmseg_ood.engine.hooks.ood_visualization_hook import heatmap_figure
    image, pred, label, scores = _street()
    for gt in (None, np.zeros_like(label)):
        fig = heatmap_figure(image, pred, PALETTE, scores, gt)
        try:
            titles = [a.get_title() for a in _panels(fig)[2:]]
            assert titles == list(scores)
            assert layout_problems(fig) == []
        finally:
            plt.close(fig)


def test_heatmap_shared_ranges_fix_the_colour_scale():
    from mmseg_ood.engine.hooks.ood_visualization_hook import heatmap_figure
    image, pred, label, scores = _street()
    fig = heatmap_figure(image, pred, PALETTE, scores, label,
                         ranges={'energy': (-20.0, 5.0)})
    try:
        panels = dict(zip(scores, _panels(fig)[2:]))
        assert panels['energy'].get_images()[0].get_clim() == (-20.0, 5.0)
        assert panels['msp'].get_images()[0].get_clim() == (
            pytest.approx(float(scores['msp'].min())),
            pytest.approx(float(scores['msp'].max())))
    finally:
        plt.close(fig)


def test_hook_shares_the_first_images_range_or_the_given_one(tmp_path,
                                                             monkeypatch):
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from mmseg_ood.engine.hooks import ood_visualization_hook as module
    seen = []
    monkeypatch.setattr(module, 'save_heatmap',
                        lambda *a, **k: seen.append(a[6]))
    hook = module.OODVisualizationHook(
        out_dir=str(tmp_path), num=3, scale='shared',
        score_ranges=dict(energy=(-1, 1)))
    image, pred, label, _ = _street()
    import cv2
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, image)
    samples = []
    for k in (1.0, 10.0):
        s = SegDataSample(metainfo=dict(img_path=path))
        s.pred_sem_seg = PixelData(data=torch.from_numpy(pred)[None])
        s.set_field(dict(msp=torch.linspace(0, k, 48 * 96).view(48, 96),
                         energy=torch.zeros(48, 96)), 'ood_scores')
        samples.append(s)
    hook.before_test(SimpleNamespace(model=SimpleNamespace(
        dataset_meta=dict(palette=PALETTE))))
    hook.after_test_iter(None, 0, outputs=samples)
    assert [r['msp'] for r in seen] == [(0.0, 1.0), (0.0, 1.0)]
    assert [r['energy'] for r in seen] == [(-1.0, 1.0), (-1.0, 1.0)]
    image_hook = module.OODVisualizationHook(out_dir=str(tmp_path))
    assert image_hook._image_ranges({'msp': np.zeros(3)}) is None


@pytest.mark.parametrize('kwargs, match', [
    (dict(scale='global'), '`scale`'),
    (dict(score_ranges=dict(msp=(1, 0))), r"score_ranges\['msp'\]"),
    (dict(score_ranges=dict(msp=(0, float('inf')))), 'score_ranges'),
    (dict(score_ranges=dict(msp=3)), 'score_ranges'),
    (dict(dpi=0), '`dpi`'),
])
def test_hook_arguments_are_validated(kwargs, match):
    from mmseg_ood.engine.hooks.ood_visualization_hook import \
        OODVisualizationHook
    with pytest.raises(ValueError, match=match):
        OODVisualizationHook(out_dir='x', **kwargs)


def test_save_heatmap_writes_a_png(tmp_path):
    from mmseg_ood.engine.hooks.ood_visualization_hook import save_heatmap
    image, pred, label, scores = _street()
    path = str(tmp_path / 'h.png')
    assert save_heatmap(path, image, pred, PALETTE, scores, label) == path
    assert open(path, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'
    assert [p.name for p in tmp_path.iterdir()] == ['h.png']


# --- the report figures ------------------------------------------------------
def _accumulators(n, k=6):
    rng = np.random.default_rng(0)
    out = {}
    for i in range(n):
        r = np.corrcoef(rng.normal(size=(k, k)))
        out[f'model {i} with a long name'] = SimpleNamespace(
            autocorrelation=lambda c, r=r: r, count=np.full(k, 1000),
            num_classes=k)
    return out


@pytest.mark.parametrize('n', [1, 2, 3])
def test_autocorrelation_suptitle_clear_of_the_panels(tmp_path,
                                                      kept_figures, n):
    from mmseg_ood.reports.representation import plot_autocorrelation
    accs = _accumulators(n)
    records = {m: dict(class_names=[f'class{i}' for i in range(6)])
               for m in accs}
    (fig, ) = kept_figures(plot_autocorrelation, str(tmp_path / 'a.png'), 2,
                           accs, records)
    assert layout_problems(fig) == []


def test_the_overlap_check_catches_a_suptitle_on_the_axes():
    """The auto-correlation figure as drawn before (no layout engine,
    two-line panel titles): the check reports its suptitle."""
    fig, axes = plt.subplots(1, 1, figsize=(3.6 + 1.2, 3.9), squeeze=False)
    try:
        image = axes[0][0].imshow(np.eye(6), vmin=-1, vmax=1)
        axes[0][0].set_title('model\nclass 2 (class2), 1000 px', fontsize=9)
        fig.suptitle('Normalized auto-correlation of the logits, predicted '
                     'class 2', fontsize=10)
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
        problems = layout_problems(fig)
        assert any('suptitle' in p and 'overlaps' in p for p in problems), \
            problems
    finally:
        plt.close(fig)


def test_explained_variance_labels_clear_of_the_plot(tmp_path, kept_figures):
    from mmseg_ood.reports.representation import plot_explained_variance
    records = {}
    for i, name in enumerate(('baseline', 'fine-tuned')):
        ev = np.cumsum([0.5 - 0.1 * i, 0.3, 0.1, 0.06, 0.04]) / (1 - 0.1 * i)
        records[name] = dict(explained_variance=np.minimum(ev, 1).tolist(),
                             dims_90=3, dims_95=4)
    (fig, ) = kept_figures(plot_explained_variance, str(tmp_path / 'e.png'),
                           records)
    assert layout_problems(fig) == []
    renderer = _renderer(fig)
    (ax, ) = fig.axes
    # the 90 % / 95 % labels sit right of the plotting area
    levels = [t for t in ax.texts if t.get_text() in ('90%', '95%')]
    assert len(levels) == 2
    area = ax.get_window_extent(renderer)
    for t in levels:
        assert t.get_window_extent(renderer).x0 >= area.x1


def test_robustness_examples_are_readable(tmp_path, kept_figures):
    from mmseg_ood.reports.robustness import plot_examples
    rng = np.random.default_rng(0)
    examples = [dict(image=rng.integers(0, 255, (32, 64, 3), np.uint8),
                     corruption=c, severity=3, palette=PALETTE,
                     predictions={m: rng.integers(0, 3, (32, 64))
                                  for m in ('deeplabv3plus',
                                            'deeplabv3plus + MSC')})
                for c in ('gaussian_noise', 'motion_blur')]
    (fig, ) = kept_figures(plot_examples, str(tmp_path / 'f.png'), examples)
    assert layout_problems(fig, image_axes=fig.axes) == []
    renderer = _renderer(fig)
    # at the 100 dpi written: panels at least 300 px wide, text >= 10 pt
    for ax in fig.axes:
        assert ax.get_window_extent(renderer).width >= 300
    assert min(t.get_fontsize() for t in _texts(fig)) >= 10


def test_score_distributions_layout(tmp_path, kept_figures):
    from mmseg_ood.reports.figures import plot_score_distributions
    dists = {name: _distribution(i)[2]
             for i, name in enumerate(('msp', 'entropy', 'energy', 'norm',
                                       'n_energy'))}
    results = {n: dict(ap=0.5, auroc=0.9) for n in dists}
    (fig, ) = kept_figures(plot_score_distributions, str(tmp_path / 's.png'),
                           'synthetic_ood', dists, results)
    assert layout_problems(fig) == []


def test_distribution_violins_layout(tmp_path, kept_figures):
    from mmseg_ood.reports.figures import plot_distribution_violins
    runs = {name: _distribution(i)[2]
            for i, name in enumerate(('baseline', 'entropy max.'))}
    (fig, ) = kept_figures(plot_distribution_violins, str(tmp_path / 'v.png'),
                           runs, 'entropy', 'synthetic_ood')
    assert layout_problems(fig) == []


def test_open_set_miou_layout(tmp_path, kept_figures):
    from mmseg_ood.reports.figures import plot_open_set_miou
    t = np.linspace(0, 1, 11)
    curves = {m: dict(scorer='entropy', thresholds=t.tolist(),
                      miou=(80 - 20 * (1 - t) ** 3 - k).tolist(),
                      plain=80.0 - k)
              for k, m in enumerate(('baseline', 'entropy max.'))}
    (fig, ) = kept_figures(plot_open_set_miou, str(tmp_path / 'o.png'),
                           curves)
    assert layout_problems(fig) == []


def test_roc_pr_layout(tmp_path, kept_figures):
    from mmseg_ood.evaluation import PixelOODAccumulator
    from mmseg_ood.reports.results import plot_roc_pr
    accs, results = {}, {}
    for i, name in enumerate(('msp', 'energy')):
        scores, labels, _ = _distribution(i)
        accs[name] = PixelOODAccumulator(bits=12).update(scores, labels)
        results[name] = dict(auroc=0.9, ap=0.5)
    figs = kept_figures(plot_roc_pr, str(tmp_path), 'synthetic_ood', accs,
                        results)
    assert len(figs) == 2
    for fig in figs:
        assert layout_problems(fig) == []


# --- the "unknown" overlay's legend ------------------------------------------
@pytest.mark.parametrize('shape', [(1, 1), (24, 40), (256, 512)])
def test_overlay_legend_sits_beside_the_image(shape):
    """The legend leaves the overlay's pixels as they are and its swatches
    (one per class named, no two on one another) lie right of it."""
    import cv2

    from mmseg_ood.deploy.inferencer import draw_legend
    rng = np.random.default_rng(0)
    overlay = rng.integers(0, 255, shape + (3, ), np.uint8)
    classes = ['road', 'sidewalk', 'building', 'vegetation', 'sky',
               'vehicle', 'unknown']
    palette = [(128, 64, 128), (244, 35, 232), (70, 70, 70),
               (107, 142, 35), (70, 130, 180), (0, 0, 142), (255, 0, 0)]
    out = draw_legend(overlay, range(7), classes, palette)
    h, w = shape
    assert out.shape[0] >= h and out.shape[1] > w
    np.testing.assert_array_equal(out[:h, :w], overlay)
    assert (out[h:, :w] == 255).all()      # below a short image: white
    legend = out[:, w:]
    for colour in palette:
        hit = (legend == colour).all(-1).astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(hit)
        # one swatch each, whole (antialiased text may share a colour in
        # a few pixels)
        swatches = [a for a in stats[1:, cv2.CC_STAT_AREA] if a >= 64]
        assert len(swatches) == 1, colour
    # nothing to name: the overlay as it is
    assert draw_legend(overlay, [], classes, palette) is overlay
    assert draw_legend(overlay, [9], classes, palette) is overlay


def test_score_distribution_tick_labels_apart_on_a_narrow_range(
        tmp_path, kept_figures):
    """An untrained model's scores span 1e-4 around 0.83: the x tick
    labels of each panel must not run into each other."""
    from mmseg_ood.evaluation.accumulators.score_distribution import \
        ScoreDistribution
    rng = np.random.default_rng(0)
    scores = (0.83214 + 1.4e-4 * rng.random(4000)).astype(np.float64)
    labels = (rng.random(4000) < 0.1).astype(np.uint8)
    dists = {n: ScoreDistribution.from_scores(scores, labels, num_bins=64)
             for n in ('msp', 'entropy', 'max_logit')}
    (fig, ) = kept_figures(plot_score_distributions_of(),
                           str(tmp_path / 's.png'), 'd', dists)
    renderer = _renderer(fig)
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer)
                 for t in ax.get_xticklabels() if t.get_text()]
        assert len(boxes) >= 2
        for a, b in zip(boxes, boxes[1:]):
            assert a.x1 <= b.x0 + 1, [t.get_text()
                                      for t in ax.get_xticklabels()]


def plot_score_distributions_of():
    from mmseg_ood.reports.figures import plot_score_distributions
    return plot_score_distributions
