"""Reports of ``tools/analyze_representation.py``: the effective
dimensionality table and the SCrIBE paper's Fig. 3 (auto-correlation of the
logits) and Fig. 4 (accumulated explained variance), written atomically."""
from __future__ import annotations

import os
import os.path as osp
import warnings
from typing import Dict

import numpy as np

from ..errors import OODNotice
from ..evaluation.accumulators.representation import RepresentationAccumulator
from ..utils.files import atomic_write_text, dump_json
from .results import md_cell, save_figure

__all__ = ['LEVELS', 'REPRESENTATION_SCHEMA_VERSION', 'markdown_table',
           'write_representation', 'plot_explained_variance',
           'plot_autocorrelation']

#: ``schema_version`` of ``representation.json`` (files without the field,
#: written before it was recorded, are version 0 and have the same layout).
REPRESENTATION_SCHEMA_VERSION = 1

#: Explained-variance levels of the effective dimensionality (Fig. 4 lines).
LEVELS = (0.90, 0.95)


def _count(v) -> str:
    return 'n/a' if v is None else str(v)


def markdown_table(records: Dict[str, dict]) -> str:
    """model | k | pixels | dims 90% | dims 95% (``n/a``: undefined).

    Args:
        records: Model name -> its record in ``representation.json``:
            ``num_classes`` (k), ``pixels``, ``dims_90`` and ``dims_95``
            (the effective dimensionality at 90 % / 95 % explained
            variance, ``None`` where undefined).

    Returns:
        str: The Markdown table, one row per model.
    """
    lines = ['| model | k | pixels | dims 90% | dims 95% |',
             '|---|---|---|---|---|']
    for name, r in records.items():
        lines.append(f'| {md_cell(name)} | {r["num_classes"]} | '
                     f'{r["pixels"]} | '
                     f'{_count(r["dims_90"])} | {_count(r["dims_95"])} |')
    return '\n'.join(lines)


def write_representation(work_dir: str, payload: dict,
                         accumulators: Dict[str, RepresentationAccumulator]
                         ) -> Dict[str, str]:
    """Write ``representation.json``, ``.md``, ``explained_variance.png``
    and ``autocorrelation_class<c>.png`` (each complete under its name:
    written to a temporary one and renamed); return their paths.

    Args:
        work_dir: The folder (created if missing).
        payload: What ``representation.json`` holds: ``models`` (name ->
            record, see :func:`markdown_table`; with
            ``explained_variance``), ``classes`` (the classes whose
            auto-correlation is drawn) and the run's settings; a ``files``
            key is not written.
        accumulators: Model name -> its
            :class:`~mmseg_ood.evaluation.accumulators.representation.
            RepresentationAccumulator`, for the auto-correlation figures.

    Returns:
        dict: ``json``, ``md``, ``explained_variance`` and
        ``autocorrelation_class<c>`` -> path.
    """
    os.makedirs(work_dir, exist_ok=True)
    paths = {k: osp.join(work_dir, f'representation.{k}')
             for k in ('json', 'md')}
    records = payload['models']
    paths['explained_variance'] = plot_explained_variance(
        osp.join(work_dir, 'explained_variance.png'), records)
    for c in payload['classes']:
        paths[f'autocorrelation_class{c}'] = plot_autocorrelation(
            osp.join(work_dir, f'autocorrelation_class{c}.png'), c,
            accumulators, records)
    md = ['# Representation structure\n',
          'Effective dimensionality: the number of principal components of '
          'the logit vectors that explain 90 % / 95 % of their variance '
          '(SCrIBE sec. 4, Fig. 4); pixels of the test set.\n',
          markdown_table(records), '',
          '![explained variance](explained_variance.png)']
    md += [f'![auto-correlation, class {c}](autocorrelation_class{c}.png)'
           for c in payload['classes']]
    atomic_write_text(paths['md'], '\n'.join(md) + '\n')
    dump_json({'schema_version': REPRESENTATION_SCHEMA_VERSION,
               **{k: v for k, v in payload.items()
                  if k not in ('files', 'schema_version')}}, paths['json'])
    return paths


def _save(fig, path: str) -> str:
    """Write atomically and close a figure (laid out by its maker);
    return ``path``."""
    return save_figure(fig, path, tight=False)


def plot_explained_variance(path: str, records: Dict[str, dict]) -> str:
    """Fig. 4: accumulated explained variance against the number of
    components, a curve per model; dashed lines at 90 % and 95 %.

    Args:
        path: The image file.
        records: Model name -> record with ``explained_variance``
            (cumulative ratios, ``(k,)``), ``dims_90`` and ``dims_95``; a
            model with non-finite ratios (no pixel) is left out.

    Returns:
        str: ``path``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.8), layout='constrained')
    kmax = 1
    # identical curves (one model under two names) stay visible
    styles = ('-', '--', ':', '-.')
    for i, (name, r) in enumerate(records.items()):
        ev = np.asarray(r['explained_variance'], np.float64)
        if not np.isfinite(ev).all():
            continue  # no pixel (or no variance): nothing to draw
        x = np.arange(1, len(ev) + 1)
        kmax = max(kmax, len(ev))
        ax.plot(x, ev, marker='o', linestyle=styles[i % len(styles)],
                markersize=3,
                label=f'{name} (90%: {r["dims_90"]}, 95%: {r["dims_95"]})')
    # the level labels sit right of the axes, clear of the curves' ends
    for level in LEVELS:
        ax.axhline(level, color='grey', linestyle='--', linewidth=0.8)
        ax.text(1.01, level, f'{level:.0%}', fontsize=9, color='grey',
                va='center', ha='left', transform=ax.get_yaxis_transform())
    ax.set(xlabel='number of components', ylabel='accumulated explained '
           'variance', title='Accumulated explained variance of the logits',
           ylim=(0, 1.02), xlim=(0.5, kmax + 0.5))
    if kmax <= 30:
        ax.set_xticks(range(1, kmax + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc='lower right')
    return _save(fig, path)


def plot_autocorrelation(path: str, cls: int,
                         accumulators: Dict[str, RepresentationAccumulator],
                         records: Dict[str, dict]) -> str:
    """Fig. 3: the normalized auto-correlation matrix of the logit vectors
    predicted as ``cls``, a heatmap per model, one colour scale (-1 to
    1). Undefined entries (class never predicted, a component always 0)
    are left blank, with a warning.

    Args:
        path: The image file.
        cls: The predicted class whose logit vectors are drawn.
        accumulators: Model name -> its ``RepresentationAccumulator``; one
            panel each, in this order.
        records: Model name -> record; its ``class_names`` (optional)
            label the panels.

    Returns:
        str: ``path``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = len(accumulators)
    # constrained layout keeps the suptitle, the two-line panel titles and
    # the shared colour bar apart at any number of panels
    fig, axes = plt.subplots(1, n, figsize=(3.8 * n + 1.2, 4.6),
                             squeeze=False, layout='constrained')
    image = None
    for ax, (name, acc) in zip(axes[0], accumulators.items()):
        r = acc.autocorrelation(cls)
        class_names = records[name].get('class_names')
        label = f'{cls} ({class_names[cls]})' if class_names else str(cls)
        if acc.count[cls] == 0:
            warnings.warn(f'model {name!r} never predicts class {cls}: its '
                          f'auto-correlation panel in {path} is empty',
                          OODNotice)
        image = ax.imshow(r, vmin=-1, vmax=1, cmap='RdBu_r',
                          interpolation='nearest')
        ax.set_title(f'{name}\nclass {label}, {int(acc.count[cls])} px',
                     fontsize=10)
        ax.set_xlabel('component j', fontsize=10)
        ax.set_ylabel('component i', fontsize=10)
        if acc.num_classes <= 30:
            ticks = range(acc.num_classes)
            ax.set_xticks(ticks)
            ax.set_yticks(ticks)
            ax.tick_params(labelsize=8 if acc.num_classes <= 20 else 6)
    fig.suptitle(f'Normalized auto-correlation of the logits, predicted '
                 f'class {cls}', fontsize=11)
    bar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    bar.set_label('correlation', fontsize=10)
    return _save(fig, path)
