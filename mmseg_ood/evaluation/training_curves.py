"""Training curves from mmengine's ``scalars.json``: loss and validation
metrics (with :class:`~mmseg_ood.evaluation.per_class_iou.
PerClassIoUMetric`, each class's IoU) over iterations, for several runs.

mmengine's ``LocalVisBackend`` writes ``<work_dir>/<timestamp>/vis_data/
scalars.json``, one JSON object per line: training lines carry ``loss``
(and the loss terms) at ``step``, validation lines the metrics at the
iteration they were taken.
"""
from __future__ import annotations

import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

__all__ = ['read_scalars', 'curves_markdown', 'plot_curves']


def read_scalars(work_dir: str) -> Dict[str, List[dict]]:
    """``{'train': [...], 'val': [...]}`` of a run's ``scalars.json`` (the
    newest one in ``work_dir``), each a list of dicts with ``step``.

    Raises:
        FileNotFoundError: no ``*/vis_data/scalars.json`` in ``work_dir``.
        ValueError: a line that is not JSON, naming the file and line.
    """
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no */vis_data/scalars.json in {work_dir} '
                                "(mmengine's LocalVisBackend writes it)")
    out = {'train': [], 'val': []}
    with open(files[-1]) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{files[-1]} line {n}: {e}') from None
            out['train' if 'loss' in row else 'val'].append(row)
    return out


def _classes(rows: Sequence[dict]) -> List[str]:
    seen = []
    for row in rows:
        for k in row:
            if k.startswith('IoU.') and k[4:] not in seen:
                seen.append(k[4:])
    return seen


def curves_markdown(runs: Dict[str, Dict[str, List[dict]]]) -> str:
    """One table per run: each validation's mIoU and per-class IoU, and
    the training loss logged at that iteration."""
    parts = []
    for name, data in runs.items():
        classes = _classes(data['val'])
        loss = {r['step']: r['loss'] for r in data['train']}
        head = ['iter', 'loss'] + classes + ['mIoU']
        lines = [f'**{name}**', '', '| ' + ' | '.join(head) + ' |',
                 '|' + '---|' * len(head)]
        for row in data['val']:
            step = row['step']
            cells = [str(step), f'{loss[step]:.3f}' if step in loss else '']
            cells += [f'{row.get("IoU." + c, float("nan")):.1f}'
                      for c in classes]
            cells.append(f'{row.get("mIoU", float("nan")):.2f}')
            lines.append('| ' + ' | '.join(cells) + ' |')
        parts.append('\n'.join(lines))
    return '\n\n'.join(parts) + '\n'


def plot_curves(runs: Dict[str, Dict[str, List[dict]]], out: str,
                classes: Optional[Sequence[str]] = None) -> str:
    """A figure: training loss of every run, then one panel per class with
    every run's IoU over iterations; written to ``out`` (PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    classes = list(classes or _classes(
        [r for d in runs.values() for r in d['val']]))
    panels = 1 + len(classes) + 1
    cols = min(4, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows),
                             squeeze=False)
    axes = axes.ravel()
    for name, data in runs.items():
        axes[0].plot([r['step'] for r in data['train']],
                     [r['loss'] for r in data['train']], label=name)
        for ax, key in zip(axes[1:], [f'IoU.{c}' for c in classes] +
                           ['mIoU']):
            pts = [(r['step'], r[key]) for r in data['val'] if key in r]
            if pts:
                ax.plot(*zip(*pts), marker='o', label=name)
    axes[0].set_title('training loss')
    axes[0].set_yscale('log')
    axes[0].legend(fontsize=7)
    for ax, title in zip(axes[1:], [f'IoU {c}' for c in classes] +
                         ['mIoU']):
        ax.set_title(title)
        ax.set_ylim(0, 100)
        ax.set_xlabel('iteration')
    for ax in axes[panels:]:
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
