"""Training curves from mmengine's ``scalars.json``: loss and validation
metrics (with :class:`~mmseg_ood.evaluation.metrics.per_class_iou.
PerClassIoUMetric`, each class's IoU) over iterations, for several runs,
and the per-iteration diagnostics of
:class:`~mmseg_ood.models.losses.MonitoredLoss` (gradient norm of each
loss term at the logits, the largest per-class term, the total gradient
norm) where they were logged.

mmengine's ``LocalVisBackend`` writes ``<work_dir>/<timestamp>/vis_data/
scalars.json``, one JSON object per line: training lines carry ``loss``
(and the loss terms) at ``step``, validation lines the metrics at the
iteration they were taken.
"""
from __future__ import annotations

import glob
import json
import math
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence

from mmseg_ood.errors import DamagedFileError, MissingInputError, OODNotice

from .results import save_figure

__all__ = [
    'read_scalars', 'training_log_markdown', 'plot_training_log',
    'diagnostic_keys', 'spikes_markdown'
]

#: Suffixes of the per-iteration diagnostics :class:`~mmseg_ood.models.
#: losses.MonitoredLoss` logs (``<loss_name>.<suffix>``), and mmengine's
#: total gradient norm (logged when ``optim_wrapper.clip_grad`` is set).
GRADIENT_SUFFIX = '.logit_grad_norm'
TERM_SUFFIX = '.max_term'
TOTAL_GRADIENT = 'grad_norm'


def read_scalars(work_dir: str) -> Dict[str, List[dict]]:
    """``{'train': [...], 'val': [...]}`` of a run's ``scalars.json`` (the
    newest one in ``work_dir``), each a list of dicts with ``step`` and
    numbers.

    Each line of the file is a JSON object of numbers at an iteration
    (``step``; ``iter`` is read alike). What cannot be plotted is left out
    with one :class:`~mmseg_ood.errors.OODNotice` per file that says how
    much and where: a line without an iteration, a value that is not a
    number (a list, a string, ``null``; a training line whose ``loss`` is
    not a number is left out whole), and the last line when it is cut
    short (a run killed, or still writing, while it logged).

    Args:
        work_dir: The run's work dir (``--work-dir`` of
            ``tools/train.py``); the newest ``*/vis_data/scalars.json``
            under it (by timestamp folder name) is read.

    Returns:
        dict: ``'train'``: the rows with a ``loss``; ``'val'``: the others
        (validation metrics); each row ``{'step': int, key: number}``, in
        file order.

    Raises:
        MissingInputError: ``work_dir`` is not a folder, or holds no
            ``*/vis_data/scalars.json``.
        DamagedFileError: the file is not UTF-8 text, a line before the
            last is not JSON, a line is JSON but not an object, or no line
            has an iteration (an empty log); each names the file (and the
            line).
    """
    if not osp.isdir(work_dir):
        kind = 'is a file' if osp.exists(work_dir) else 'does not exist'
        raise MissingInputError(f'work dir {work_dir} {kind}: give the work '
                                'dir of a training run')
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'scalars.json')))
    if not files:
        raise MissingInputError(f'no */vis_data/scalars.json in {work_dir} '
                                "(mmengine's LocalVisBackend writes it)")
    path = files[-1]
    try:
        with open(path, encoding='utf-8') as f:
            lines = [(n, line) for n, line in enumerate(f, 1)
                     if line.strip()]
    except UnicodeDecodeError as e:
        raise DamagedFileError(f'{path} is not UTF-8 text (byte {e.start}):'
                               " is it mmengine's scalars.json?") from None
    out = {'train': [], 'val': []}
    cut, no_step, dropped = [], [], {}
    for i, (n, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                cut.append(n)  # the run stopped while writing it
                continue
            raise DamagedFileError(f'{path} line {n} is not JSON ({e.msg}, '
                                   f'column {e.colno})') from None
        except RecursionError:
            raise DamagedFileError(f'{path} line {n} is nested too deeply '
                                   "to be mmengine's scalars") from None
        if not isinstance(row, dict):
            raise DamagedFileError(
                f'{path} line {n} is {_TYPE.get(type(row), "a value")}, not '
                "an object of scalars: is it mmengine's scalars.json?")
        step = _iteration(row)
        if step is None:
            no_step.append(n)
            continue
        clean = {'step': step}
        for k, v in row.items():
            if k in ('step', 'iter'):
                continue
            if _number(v):
                clean[k] = v
            else:
                dropped.setdefault(k, n)
        if 'loss' in row and 'loss' not in clean:
            continue  # a training line without its loss: nothing to plot
        out['train' if 'loss' in clean else 'val'].append(clean)
    notes = []
    if cut:
        notes.append(f'its last line ({cut[0]}) is cut short')
    if no_step:
        notes.append(f'{len(no_step)} line(s) have no iteration (step or '
                     f'iter), first line {no_step[0]}')
    if dropped:
        notes.append('values that are not numbers were left out: ' +
                     ', '.join(f'{k!r} (line {n})'
                               for k, n in list(dropped.items())[:5]))
    if notes:
        warnings.warn(f'{path}: ' + '; '.join(notes), OODNotice)
    if not out['train'] and not out['val']:
        raise DamagedFileError(f'{path} holds no scalars at an iteration: '
                               'has the run logged anything yet?')
    return out


_TYPE = {list: 'a list', str: 'a string', int: 'a number',
         float: 'a number', bool: 'true or false', type(None): 'null'}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _iteration(row: dict) -> Optional[int]:
    """The row's iteration: ``step`` (or ``iter``), an int >= 0 (a float
    with an integer value too), else ``None``."""
    for key in ('step', 'iter'):
        v = row.get(key)
        if _number(v) and math.isfinite(v) and v >= 0 and \
                float(v).is_integer():
            return int(v)
    return None


def _classes(rows: Sequence[dict]) -> List[str]:
    seen = []
    for row in rows:
        for k in row:
            if k.startswith('IoU.') and k[4:] not in seen:
                seen.append(k[4:])
    return seen


def diagnostic_keys(rows: Sequence[dict]) -> Dict[str, List[str]]:
    """The diagnostics present in training rows: ``{'gradient': [...],
    'term': [...], 'total': [...]}`` (keys in first-seen order).

    Args:
        rows: Training rows of :func:`read_scalars`.

    Returns:
        dict: ``gradient``: the ``<loss>.logit_grad_norm`` keys; ``term``:
        the ``<loss>.max_term`` keys; ``total``: ``['grad_norm']`` where
        mmengine logged it.
    """
    found = {'gradient': [], 'term': [], 'total': []}
    for row in rows:
        for k in row:
            kind = ('gradient' if k.endswith(GRADIENT_SUFFIX) else
                    'term' if k.endswith(TERM_SUFFIX) else
                    'total' if k == TOTAL_GRADIENT else None)
            if kind and k not in found[kind]:
                found[kind].append(k)
    return found


def spikes_markdown(runs: Dict[str, Dict[str, List[dict]]],
                    top: int = 5) -> str:
    """Per run with a logged largest per-class term (``<loss>.max_term``):
    the ``top`` iterations where it was largest, with its class, that
    class's pixels in the batch, its expected intersection, the share of
    its pixels near a crop edge, and the gradient norms logged then.

    Args:
        runs: Run name -> :func:`read_scalars` of its work dir.
        top: How many iterations to list per run and loss.

    Returns:
        str: Markdown, one table and a one-sentence summary per run and
        loss; empty text if no run logged ``<loss>.max_term``.
    """
    parts = []
    for name, data in runs.items():
        keys = diagnostic_keys(data['train'])
        for term in keys['term']:
            loss = term[:-len(TERM_SUFFIX)]
            rows = sorted((r for r in data['train'] if term in r),
                          key=lambda r: -r[term])[:top]
            grads = keys['gradient'] + keys['total']
            head = ['iter', 'term', 'class', 'pixels', 'E[I]',
                    'near edge'] + grads
            lines = [f'**{name}**: largest `{term}`', '',
                     '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
            for r in rows:
                nan = float('nan')
                cls = r.get(f'{loss}.max_term_class', -1)
                cells = [str(r['step']), f'{r[term]:.4g}',
                         str(int(cls)) if math.isfinite(cls) else 'n/a',
                         f'{r.get(loss + ".max_term_pixels", nan):.0f}',
                         f'{r.get(loss + ".max_term_inter", nan):.3g}',
                         f'{r.get(loss + ".max_term_border", nan):.2f}']
                cells += [f'{r.get(g, float("nan")):.3g}' for g in grads]
                lines.append('| ' + ' | '.join(cells) + ' |')
            lines += ['', _spike_summary(data['train'], loss)]
            parts.append('\n'.join(lines))
    return '\n\n'.join(parts) + '\n' if parts else ''


def _spike_summary(rows: Sequence[dict], loss: str,
                   factor: float = 10.0) -> str:
    """One sentence: how many iterations had a largest term over
    ``factor`` x the run's median, and the median pixels and near-edge
    share of the class behind it then and in the other iterations."""
    import numpy as np
    keys = [f'{loss}{s}' for s in (TERM_SUFFIX, '.max_term_pixels',
                                   '.max_term_border')]
    data = np.array([[r.get(k, np.nan) for k in keys] for r in rows
                     if keys[0] in r], dtype=float)
    if not len(data):
        return ''
    spike = data[:, 0] > factor * np.nanmedian(data[:, 0])

    def med(mask, col):
        return f'{np.nanmedian(data[mask, col]):.3g}' if mask.any() \
            else 'n/a'
    median = np.nanmedian(data[:, 0])
    return (f'{int(spike.sum())} of {len(data)} iterations have a largest '
            f'term over {factor:g}x the median ({median:.3g}); '
            f'the class behind it has a median of {med(spike, 1)} pixels '
            f'(other iterations: {med(~spike, 1)}), {med(spike, 2)} of '
            f'them near a crop edge (other iterations: {med(~spike, 2)}).')


def training_log_markdown(runs: Dict[str, Dict[str, List[dict]]]) -> str:
    """One table per run: each validation's mIoU and per-class IoU, and
    the training loss logged at that iteration.

    Args:
        runs: Run name -> :func:`read_scalars` of its work dir; per-class
            IoU columns come from its ``IoU.<class>`` keys.

    Returns:
        str: Markdown; IoU and mIoU in percent as logged.
    """
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


def plot_training_log(runs: Dict[str, Dict[str, List[dict]]], out: str,
                classes: Optional[Sequence[str]] = None) -> str:
    """A figure: training loss of every run, then one panel per class with
    every run's IoU over iterations; written to ``out`` (PNG).

    Panels for the logged diagnostics (gradient norms, largest per-class
    term) come between the loss and the classes, on a log scale.

    Args:
        runs: Run name -> :func:`read_scalars` of its work dir.
        out: The image file.
        classes: The classes to draw a panel for (``IoU.<class>`` keys);
            ``None``: every class any run logged.

    Returns:
        str: ``out``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    classes = list(classes or _classes(
        [r for d in runs.values() for r in d['val']]))
    keys = diagnostic_keys([r for d in runs.values() for r in d['train']])
    extra = [(title, ks) for title, ks in (
        ('gradient norm at the logits, per term', keys['gradient']),
        ('total gradient norm (before clipping)', keys['total']),
        ('largest per-class term', keys['term'])) if ks]
    panels = 1 + len(extra) + len(classes) + 1
    cols = min(4, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows),
                             squeeze=False)
    axes = axes.ravel()
    for name, data in runs.items():
        axes[0].plot([r['step'] for r in data['train']],
                     [r['loss'] for r in data['train']], label=name)
        for ax, (_, ks) in zip(axes[1:], extra):
            for k in ks:
                pts = [(r['step'], r[k]) for r in data['train'] if k in r]
                if pts:
                    label = name if len(ks) == 1 else f'{name}: {k}'
                    ax.plot(*zip(*pts), label=label, lw=0.8)
        for ax, key in zip(axes[1 + len(extra):],
                           [f'IoU.{c}' for c in classes] + ['mIoU']):
            pts = [(r['step'], r[key]) for r in data['val'] if key in r]
            if pts:
                ax.plot(*zip(*pts), marker='o', label=name)
    axes[0].set_title('training loss')
    axes[0].set_yscale('log')
    axes[0].legend(fontsize=7)
    for ax, (title, _) in zip(axes[1:], extra):
        ax.set_title(title, fontsize=9)
        ax.set_yscale('log')
        ax.set_xlabel('iteration')
        ax.legend(fontsize=6)
    for ax, title in zip(axes[1 + len(extra):],
                         [f'IoU {c}' for c in classes] + ['mIoU']):
        ax.set_title(title)
        ax.set_ylim(0, 100)
        ax.set_xlabel('iteration')
    for ax in axes[panels:]:
        ax.axis('off')
    return save_figure(fig, out, dpi=80)
