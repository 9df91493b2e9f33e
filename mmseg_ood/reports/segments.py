"""Result files of ``tools/meta_classify.py``: the entropy-maximization
paper's Table 2 (detection errors), Table 3 (meta-classification AUROC /
AUPRC) and Fig. 7 (errors against the threshold), as Markdown, CSV and
PNG."""
from __future__ import annotations

import csv
import math
import os
import os.path as osp
from typing import Dict, List

from ..utils.files import atomic_write_text, dump_json
from .results import percent, save_figure

__all__ = [
    'detection_errors_markdown', 'false_positive_detection_markdown',
    'segment_tables_markdown', 'plot_detection_errors', 'write_meta_results'
]

_ERRORS = ('fp', 'fn', 'errors', 'id_miss_rate')
_VARIANTS = (('baseline', ''), ('meta', ' + meta'))


def _count(v) -> str:
    return 'n/a' if v is None else f'{int(v):,}'


def _score(v) -> str:
    return 'n/a' if v is None or (isinstance(v, float) and
                                  not math.isfinite(v)) else f'{v:.4f}'


def _rows(payload: dict, dataset: str) -> Dict[str, dict]:
    per = payload['results'].get(dataset)
    if per is None:
        raise KeyError(f'no segment results on {dataset!r}; there are '
                       f'{sorted(payload["results"])}')
    return per


def detection_errors_markdown(runs: Dict[str, dict], dataset: str) -> str:
    """Table 2: per threshold, FP / FN / sum / ID-pixel miss rate (%) of
    each run (model), without and with its meta classifier.

    Args:
        runs: Name -> the payload of a ``meta_results.json``.
        dataset: The dataset to report.
    """
    groups = [(name, payload) for name, payload in runs.items()]
    head = ['t']
    for name, _ in groups:
        for variant, suffix in _VARIANTS:
            group = (name + suffix if len(groups) > 1 else
                     'baseline' if variant == 'baseline' else '+ meta')
            head += [f'{group} {c}'
                     for c in ('FP', 'FN', 'Σ', 'ε % (ID miss)')]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    thresholds = list(dict.fromkeys(
        t for _, p in groups for t in _rows(p, dataset)))
    for t in sorted(thresholds, key=float):
        row = [t]
        for _, payload in groups:
            r = _rows(payload, dataset).get(t, {})
            for variant, _ in _VARIANTS:
                e = r.get(variant) or {}
                row += [_count(e.get(k)) for k in ('fp', 'fn', 'errors')]
                row.append(percent(e.get('id_miss_rate')))
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def false_positive_detection_markdown(runs: Dict[str, dict],
                                      dataset: str) -> str:
    """Table 3: per threshold, AUROC / AUPRC of telling false-positive
    segments from true ones, by the segment's MSP and by the meta
    classifier (cross-validated), for each run."""
    head = ['t']
    for name in runs:
        pre = f'{name} ' if len(runs) > 1 else ''
        head += [f'{pre}MSP AUROC', f'{pre}MSP AUPRC',
                 f'{pre}+ meta AUROC', f'{pre}+ meta AUPRC']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    thresholds = list(dict.fromkeys(
        t for p in runs.values() for t in _rows(p, dataset)))
    for t in sorted(thresholds, key=float):
        row = [t]
        for payload in runs.values():
            r = _rows(payload, dataset).get(t, {})
            row += [_score(r.get(k)) for k in ('msp_auroc', 'msp_auprc',
                                               'meta_auroc', 'meta_auprc')]
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def segment_tables_markdown(runs: Dict[str, dict], dataset: str) -> str:
    """Table 2 and Table 3 of ``dataset``, with their sizes and, per run and
    threshold, how the classifier was cross-validated (or why there is
    none)."""
    first = next(iter(runs.values()))
    row = next(iter(_rows(first, dataset).values()))
    notes = []
    for name, payload in runs.items():
        by_text: Dict[str, List[str]] = {}
        for t, r in _rows(payload, dataset).items():
            text = r.get('note') or r.get('cv')
            if text:
                by_text.setdefault(text, []).append(t)
        notes += [f'- {name + ", " if len(runs) > 1 else ""}'
                  f't = {", ".join(ts)}: {text}'
                  for text, ts in by_text.items()]
    return '\n'.join([
        f'{row["images"]} images, {row["baseline"]["objects"]} ground-truth '
        'OOD objects.\n', 'Detection errors (Table 2; ε: ID pixels '
        'predicted OOD, eq. 10):\n',
        detection_errors_markdown(runs, dataset) + '\n',
        'Finding the false-positive segments (Table 3):\n',
        false_positive_detection_markdown(runs, dataset) + '\n'] +
        (['Meta classifier per threshold:\n', '\n'.join(notes) + '\n']
         if notes else []))


def plot_detection_errors(path: str, runs: Dict[str, dict],
                          dataset: str) -> str:
    """Fig. 7: false negatives against false positives, one point per
    threshold (labelled), a line per run and variant; filled markers where
    the ID-pixel miss rate is below 0.1%, hollow ones where it is not (the
    paper's pie markers turn red at 0.1%)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, payload in runs.items():
        rows = _rows(payload, dataset)
        ts = sorted(rows, key=float)
        for variant, suffix in _VARIANTS:
            if any(rows[t][variant] is None for t in ts):
                continue
            fp = [rows[t][variant]['fp'] for t in ts]
            fn = [rows[t][variant]['fn'] for t in ts]
            line, = ax.plot(fp, fn, '-', label=f'{name}{suffix}')
            for t, x, y in zip(ts, fp, fn):
                miss = rows[t][variant]['id_miss_rate']
                low = miss is not None and miss < 1e-3
                ax.plot(x, y, 'o', color=line.get_color(),
                        markerfacecolor=line.get_color() if low else 'none')
                ax.annotate(t, (x, y), fontsize=7,
                            textcoords='offset points', xytext=(3, 3))
    ax.set_xscale('symlog', linthresh=10)  # FP counts span 0 to thousands
    ax.set(xlabel='false-positive segments', ylabel='missed OOD objects',
           title=f'detection errors - {dataset}\n(filled: ID miss rate '
           '< 0.1%)')
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _csv_rows(payload: dict) -> List[dict]:
    rows = []
    for dataset, per in payload['results'].items():
        for t, r in per.items():
            for variant, _ in _VARIANTS:
                e = r[variant] or {}
                judge = 'msp' if variant == 'baseline' else 'meta'
                rows.append(dict(
                    dataset=dataset, threshold=float(t), variant=variant,
                    **{k: e.get(k) for k in ('fp', 'fn', 'errors', 'tp',
                                             'segments', 'objects',
                                             'id_miss_rate')},
                    fp_auroc=r.get(f'{judge}_auroc'),
                    fp_auprc=r.get(f'{judge}_auprc')))
    return rows


def write_meta_results(work_dir: str, payload: dict,
                       name: str = 'model') -> Dict[str, str]:
    """Write ``meta_results.json``, ``.csv``, ``.md`` and one
    ``detection_errors_<dataset>.png`` per dataset (each file complete
    under its name: written to a temporary one and renamed)."""
    os.makedirs(work_dir, exist_ok=True)
    paths = {k: osp.join(work_dir, f'meta_results.{k}')
             for k in ('json', 'csv', 'md')}
    dump_json(payload, paths['json'])
    rows = _csv_rows(payload)
    with open(paths['csv'] + '.tmp', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [
            'dataset'])
        w.writeheader()
        w.writerows(rows)
    os.replace(paths['csv'] + '.tmp', paths['csv'])
    runs = {name: payload}
    md = [f'# Meta classification of {payload["scorer"]} segments\n',
          f'Cross-validation: `{payload["cv"]}`.\n']
    for dataset in payload['results']:
        md += [f'## {dataset}\n', segment_tables_markdown(runs, dataset)]
        png = osp.join(work_dir, f'detection_errors_{dataset}.png')
        paths[f'png_{dataset}'] = plot_detection_errors(png, runs, dataset)
    atomic_write_text(paths['md'], '\n'.join(md))
    return paths
