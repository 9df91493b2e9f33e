"""Figures drawn from what an evaluation keeps, in one style (matplotlib,
Agg backend; each PNG written to a temporary name, then renamed).

- :func:`plot_score_distributions`: ID vs OOD score histograms of every
  scorer on one dataset (norm-decoupling thesis Figs. 4.2 / 4.3).
- :func:`plot_distribution_violins`: violins of one score on ID and OOD
  pixels for several models side by side, e.g. before and after
  fine-tuning (entropy-maximization Fig. 3).
- :func:`plot_tuning_sweeps`: AP against each tuned parameter, one line per
  fixed value of the others (thesis Figs. 5.5 / 5.6: delta, 5.7: eta; and
  the temperature of eq. 4.20).
- :func:`plot_open_set_miou`: ID mIoU with an extra OOD class against the
  score threshold (entropy-maximization Fig. 5).

They read :class:`~mmseg_ood.evaluation.accumulators.score_distribution.
ScoreDistribution` objects and the ``tuning`` / ``open_set_iou`` entries
of ``results.json``: no per-pixel array.
"""
from __future__ import annotations

import math
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np

from ..errors import InvalidValueError
from ..evaluation.accumulators.score_distribution import ScoreDistribution
from .results import percent, save_figure

__all__ = ['plot_score_distributions', 'plot_distribution_violins',
           'plot_tuning_sweeps', 'plot_open_set_miou', 'ID_COLOR',
           'OOD_COLOR']

#: Colours of ID and OOD pixels in every figure.
ID_COLOR, OOD_COLOR = 'tab:blue', 'tab:red'
#: Label of each tuned parameter on an axis.
_PARAM_LABELS = dict(eta='class-weight exponent eta (thesis eq. 4.23)',
                     delta='norm reintroduction delta (thesis eq. 5.7)',
                     temperature='temperature T (thesis eq. 4.20)')
_SHORT = dict(eta='eta', delta='delta', temperature='T')


def _small_panel(ax, xlabel: str, ylabel: str) -> None:
    """Labels, ticks, grid and legend of one panel of a multi-panel
    figure, in the small fonts these figures share."""
    ax.set_xlabel(xlabel, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc='best')


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _panels(n: int, cols: int = 4, size=(3.6, 2.8)):
    """A figure with ``n`` axes in rows of at most ``cols`` (the extra
    axes hidden)."""
    plt = _pyplot()
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols,
                                                  size[1] * rows),
                             squeeze=False)
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _ensure_dir(path: str) -> None:
    d = osp.dirname(osp.abspath(path))
    os.makedirs(d, exist_ok=True)


def _save(fig, path: str) -> str:
    """Lay out, write atomically and close a figure; return ``path``
    (:func:`~mmseg_ood.reports.results.save_figure`)."""
    return save_figure(fig, path)


def plot_score_distributions(path: str, dataset: str,
                             distributions: Dict[str, ScoreDistribution],
                             results: Optional[Dict[str, dict]] = None
                             ) -> str:
    """ID and OOD score densities of each scorer, one panel each.

    The thesis's Figs. 4.2 (normalized max logit) and 4.3 (normalized
    energy) against their raw counterparts: the less the two densities
    overlap, the better the score separates OOD pixels. Each class's
    histogram integrates to 1 (the classes' pixel counts differ by orders
    of magnitude); the medians are marked.

    Args:
        path: PNG file to write.
        dataset: Dataset name (title).
        distributions: Scorer -> its distribution.
        results: Scorer -> metrics (``ap`` and ``auroc`` go in the panel
            titles), optional.

    Returns:
        ``path``.

    References:
        Norm-decoupling thesis, Figs. 4.2 and 4.3.
    """
    if not distributions:
        raise InvalidValueError('`distributions` is empty: nothing to plot')
    _ensure_dir(path)
    from matplotlib.ticker import MaxNLocator
    fig, axes = _panels(len(distributions))
    for ax, (name, d) in zip(axes, distributions.items()):
        for which, color in (('id', ID_COLOR), ('ood', OOD_COLOR)):
            if not d.total(which):
                continue
            ax.stairs(d.density(which), d.edges, fill=True, alpha=0.35,
                      color=color,
                      label=f'{which.upper()} ({d.total(which)} px)')
            ax.axvline(float(d.quantile(0.5, which)), color=color, lw=1,
                       ls='--')
        r = (results or {}).get(name, {})
        title = name if not r else \
            f'{name}\nAP {percent(r.get("ap"))}, AUROC ' \
            f'{percent(r.get("auroc"))}'
        ax.set_title(title, fontsize=8)
        _small_panel(ax, 'score (higher = more OOD)', 'density')
        # few ticks: a narrow range's long labels would run together
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    fig.suptitle(f'ID and OOD score distributions - {dataset} '
                 '(dashed: medians)', fontsize=9)
    return _save(fig, path)


def _violin_stats(d: ScoreDistribution, which: str,
                  quantiles: Sequence[float]) -> dict:
    """matplotlib ``violin`` statistics of one class of ``d``: the
    histogram density at the bin centres of the occupied range."""
    c = d.counts(which)
    used = np.flatnonzero(c)
    lo, hi = used[0], used[-1] + 1
    centres = (d.edges[:-1] + d.edges[1:]) / 2
    coords = np.concatenate([[d.edges[lo]], centres[lo:hi], [d.edges[hi]]])
    dens = d.density(which)[lo:hi]
    vals = np.concatenate([[dens[0]], dens, [dens[-1]]])
    q = d.quantile([0.0, 0.5, 1.0, *quantiles], which)
    return dict(coords=coords, vals=vals, mean=d.mean(which),
                median=float(q[1]), min=float(q[0]), max=float(q[2]),
                quantiles=[float(v) for v in q[3:]])


def plot_distribution_violins(path: str,
                              runs: Dict[str, ScoreDistribution],
                              scorer: str = 'entropy',
                              dataset: str = '',
                              quantiles: Sequence[float] = (0.25, 0.75)
                              ) -> str:
    """Violins of one score on ID and OOD pixels, per model.

    The entropy-maximization paper's Fig. 3: relative pixel frequencies of
    the (normalized) entropy on ID and OOD pixels, before (baseline) and
    after OOD training, side by side. Each violin is a class's histogram
    density (widest bin at full width), with its median (line) and
    ``quantiles`` (the interquartile range, thin lines, by default); the
    red line across each model's pair is its threshold of highest pixel
    accuracy (:meth:`ScoreDistribution.best_accuracy_threshold`).

    Args:
        path: PNG file to write.
        runs: Model name -> the distribution of ``scorer`` (in order).
        scorer / dataset: For the title and axis.
        quantiles: Marked quantiles.

    Returns:
        ``path``.

    References:
        Chan, Rottmann & Gottschalk, ICCV 2021, Fig. 3 and appendix A.
    """
    if not runs:
        raise InvalidValueError('`runs` is empty: nothing to plot')
    _ensure_dir(path)
    plt = _pyplot()
    from matplotlib.patches import Patch
    fig, ax = plt.subplots(figsize=(max(4.0, 2.2 * len(runs) + 1), 4.2))
    for i, (model, d) in enumerate(runs.items()):
        for which, color, dx in (('id', ID_COLOR, -0.2),
                                 ('ood', OOD_COLOR, 0.2)):
            if not d.total(which):
                continue
            parts = ax.violin([_violin_stats(d, which, quantiles)],
                              positions=[i + dx], widths=0.36,
                              showmedians=True, showextrema=True)
            for body in parts['bodies']:
                body.set_facecolor(color)
                body.set_edgecolor(color)
                body.set_alpha(0.45)
            for key in ('cmedians', 'cmins', 'cmaxes', 'cbars',
                        'cquantiles'):
                if key in parts:
                    parts[key].set_color(color)
                    parts[key].set_linewidth(0.8 if key == 'cquantiles'
                                             else 1.2)
        best = d.best_accuracy_threshold()
        if best['threshold'] == best['threshold']:
            ax.hlines(best['threshold'], i - 0.45, i + 0.45, colors='red',
                      lw=1.5)
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels(list(runs), fontsize=8)
    ax.set_ylabel(f'{scorer} (higher = more OOD)')
    ax.grid(alpha=0.3, axis='y')
    ax.legend(handles=[Patch(color=ID_COLOR, alpha=0.45, label='ID pixels'),
                       Patch(color=OOD_COLOR, alpha=0.45,
                             label='OOD pixels'),
                       plt.Line2D([], [], color='red',
                                  label='threshold of highest accuracy')],
              fontsize=7, loc='best')
    ax.set_title(f'{scorer} on ID and OOD pixels'
                 + (f' - {dataset}' if dataset else ''), fontsize=9)
    return _save(fig, path)


def _nan(v) -> float:
    return float('nan') if v is None else float(v)


def plot_tuning_sweeps(out_dir: str, tuning: dict) -> Dict[str, str]:
    """``ap_vs_<param>.png`` for each tuned parameter.

    One panel per scorer type with that parameter; in it, AP (percent)
    against the parameter, one line per fixed value of the other tuned
    parameters (the untuned ones stay at their defaults), dots at the grid
    points (thesis Figs. 5.5 / 5.6: AP against delta, Fig. 5.7: against
    eta; the temperature of eq. 4.20 on a log axis where it spans a decade
    or more). The best point of each type is ringed.

    Args:
        out_dir: Directory for the files.
        tuning: ``results.json["tuning"]``: ``tuned``, ``dataset``,
            ``grid`` (point -> ``params`` scorer config and ``ap``) and
            ``best`` (type -> ``point``).

    Returns:
        ``{param: path}``.

    References:
        Norm-decoupling thesis, Figs. 5.5, 5.6, 5.7; eq. 4.20, 4.23, 5.7.
    """
    for key in ('tuned', 'grid'):
        if key not in tuning:
            raise InvalidValueError(f'`tuning` has no {key!r} (expected '
                                    'results.json["tuning"])')
    os.makedirs(out_dir, exist_ok=True)
    tuned = list(tuning['tuned'])
    best = {b['point'] for b in (tuning.get('best') or {}).values()}
    paths = {}
    for param in tuned:
        # type -> other tuned params' values -> [(x, ap, is best)]
        lines: Dict[str, Dict[tuple, list]] = {}
        for point, entry in tuning['grid'].items():
            cfg = entry['params']
            if param not in cfg:
                continue
            others = tuple((p, cfg[p]) for p in tuned
                           if p != param and p in cfg)
            lines.setdefault(cfg['type'], {}).setdefault(others, []).append(
                (float(cfg[param]), 100 * _nan(entry.get('ap')),
                 point in best))
        if not lines:
            continue
        fig, axes = _panels(len(lines), cols=3, size=(4.2, 3.2))
        xs = [x for per in lines.values() for pts in per.values()
              for x, _, _ in pts]
        log = param == 'temperature' and min(xs) > 0 and \
            max(xs) / min(xs) >= 10
        for ax, (kind, per) in zip(axes, sorted(lines.items())):
            for others, pts in sorted(per.items()):
                pts.sort()
                label = ', '.join(f'{_SHORT[p]}={v:g}'
                                  for p, v in others) or kind
                x = [p[0] for p in pts]
                y = [p[1] for p in pts]
                (line, ) = ax.plot(x, y, marker='o', ms=3, lw=1,
                                   label=label)
                for px, py, is_best in pts:
                    if is_best:
                        ax.plot([px], [py], marker='o', ms=9, mfc='none',
                                color=line.get_color())
            if log:
                ax.set_xscale('log')
            ax.set_title(kind, fontsize=9)
            _small_panel(ax, _PARAM_LABELS.get(param, param), 'AP (%)')
        fig.suptitle(f'AP against {param} on {tuning.get("dataset", "")} '
                     '(ringed: best point)', fontsize=9)
        paths[param] = _save(
            fig, osp.join(out_dir, f'ap_vs_{param}.png'))
    return paths


def plot_open_set_miou(path: str, curves: Dict[str, dict],
                       acceptable_loss: float = 1.0) -> str:
    """ID mIoU against the OOD score threshold, one line per model.

    The entropy-maximization paper's Fig. 5: on ID data, a pixel whose
    score is at least ``t`` is predicted as an extra OOD class, and the
    mIoU over the ID classes drops as ``t`` falls. Each model's plain mIoU
    (no OOD class) less ``acceptable_loss`` points is drawn dashed: the
    paper accepted a loss of about 1 point.

    Args:
        path: PNG file to write.
        curves: Model name -> ``results.json["open_set_iou"]``:
            ``scorer``, ``thresholds``, ``miou`` (percent, per threshold)
            and ``plain`` (percent).
        acceptable_loss: Points below the plain mIoU drawn dashed.

    Returns:
        ``path``.

    References:
        Chan, Rottmann & Gottschalk, ICCV 2021, sec. 6.3 and Fig. 5.
    """
    if not curves:
        raise InvalidValueError('`curves` is empty: nothing to plot')
    _ensure_dir(path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    scorers = set()
    for model, c in curves.items():
        for key in ('thresholds', 'miou', 'plain'):
            if key not in c:
                raise InvalidValueError(f'open-set curve of {model!r} has no '
                                        f'{key!r}')
        scorers.add(c.get('scorer', 'score'))
        x = np.asarray(c['thresholds'], np.float64)
        y = np.asarray([_nan(v) for v in c['miou']], np.float64)
        order = np.argsort(x)
        (line, ) = ax.plot(x[order], y[order], marker='o', ms=3,
                           label=f'{model} (plain {_nan(c["plain"]):.2f})')
        ax.axhline(_nan(c['plain']) - acceptable_loss, ls='--', lw=1,
                   color=line.get_color() if len(curves) > 1 else 'red')
    ax.set_xlabel(f'threshold t on {"/".join(sorted(scorers))} '
                  '(OOD if score >= t)')
    ax.set_ylabel('ID mIoU (%) with an OOD class')
    ax.set_title(f'open-set mIoU (dashed: plain mIoU - {acceptable_loss:g})',
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc='best')
    return _save(fig, path)
