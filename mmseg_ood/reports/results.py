"""Result files of ``tools/ood_test.py``: JSON, CSV, Markdown, curves."""
from __future__ import annotations

import csv
import json
import math
import os
import os.path as osp
from typing import Dict

from ..utils.files import atomic_write_text, dump_json, json_safe

COLUMNS = (('auroc', 'AUROC'), ('ap', 'AP'), ('fpr95', 'FPR95'),
           ('siou', 'sIoU'), ('ppv', 'PPV'), ('mean_f1', 'mean F1'))
#: Pixel metrics averaged over images (``OODMetric(per_image=True)``).
PER_IMAGE_COLUMNS = (('per_image_auroc', 'AUROC'), ('per_image_ap', 'AP'),
                     ('per_image_fpr95', 'FPR95'))
_POOLED = ('auroc', 'ap', 'fpr95')


def table_columns(rows) -> list:
    """``(key, title)`` of the columns of result rows (scorer -> metric ->
    value dicts): :data:`COLUMNS`, and where any row has per-image
    metrics, those too, each pixel metric labelled "pooled" or "per
    image"."""
    rows = list(rows)
    if not any('per_image_ap' in r for r in rows):
        return list(COLUMNS)
    return [(k, f'{t} (pooled)' if k in _POOLED else t)
            for k, t in COLUMNS] + [(k, f'{t} (per image)')
                                    for k, t in PER_IMAGE_COLUMNS]


def percent(v) -> str:
    """A metric in percent with two decimals; ``n/a`` for None, NaN or
    infinity (``null`` in ``results.json``)."""
    return 'n/a' if v is None or (isinstance(v, float) and
                                  not math.isfinite(v)) \
        else f'{100 * v:.2f}'


def percent_ci(row: dict, key: str) -> str:
    """``percent(row[key])``, and where the row has a bootstrap interval
    ``row[key + '_ci']`` (``OODMetric(bootstrap=...)``), the interval in
    brackets: ``19.10 [15.20, 23.40]``."""
    text = percent(row.get(key))
    ci = row.get(f'{key}_ci')
    if ci is not None:
        text += f' [{percent(ci[0])}, {percent(ci[1])}]'
    return text


def markdown_table(results: Dict[str, Dict[str, dict]],
                   id_miou: Dict[str, float] = None) -> str:
    """Rows: scorer; columns: per dataset AUROC, AP, FPR95, sIoU, PPV,
    mean F1 (percent; ``n/a`` where undefined; bootstrap intervals in
    brackets where the results have them, :func:`percent_ci`)."""
    datasets = list(results)
    scorers = list(dict.fromkeys(s for d in datasets for s in results[d]))
    columns = table_columns(r for d in datasets for r in results[d].values())
    head = ['scorer'] + [f'{d} {t}' for d in datasets for _, t in columns]
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for s in scorers:
        row = [s]
        for d in datasets:
            r = results[d].get(s, {})
            row += [percent_ci(r, k) for k, _ in columns]
        lines.append('| ' + ' | '.join(row) + ' |')
    text = '\n'.join(lines)
    per_image = [(d, r) for d in datasets for r in results[d].values()
                 if 'per_image_images' in r]
    if per_image:
        text += '\n\nPooled: one curve over every pixel of a dataset (as ' \
            'SMIYC); per image: the mean over the images with ID and OOD ' \
            'pixels (' + ', '.join(
                f'{d}: {r["per_image_images"]} averaged, '
                f'{r["per_image_skipped"]} skipped'
                for d, r in dict(per_image).items()) + ').'
    if id_miou:
        text += '\n\nIn-distribution mIoU: ' + ', '.join(
            f'{k}: {v:.2f}' for k, v in id_miou.items())
    return text


def comparison_table(runs: Dict[str, dict], dataset: str,
                     scorers=('msp', 'entropy', 'max_logit', 'energy',
                              'background', 'rba', 'no_object'),
                     columns=('auroc', 'ap', 'fpr95')) -> str:
    """One table over several models: rows (model, scorer), columns ID mIoU
    and the pixel metrics on ``dataset``.

    Args:
        runs: Model name -> the payload of its ``results.json``.
        dataset: The OOD dataset to report.
        scorers: Scorers to list, where a model has them.
        columns: Metric keys of :data:`COLUMNS`.
    """
    titles = dict(COLUMNS)
    head = ['model', 'ID mIoU', 'scorer'] + [titles[c] for c in columns]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for model, payload in runs.items():
        if not payload.get('complete', True):
            raise ValueError(f'the results of {model!r} are incomplete '
                             '(results.partial.json); rerun its evaluation')
        per = payload.get('results', {}).get(dataset)
        if per is None:
            raise ValueError(f'{model!r} has no results on {dataset!r}; it '
                             f"has {sorted(payload.get('results', {}))}")
        miou = (payload.get('id_miou') or {}).get('test_set')
        miou = 'n/a' if miou is None else f'{miou:.2f}'
        for s in scorers:
            if s in per:
                lines.append('| ' + ' | '.join(
                    [model, miou, s] +
                    [percent(per[s].get(c)) for c in columns]) + ' |')
    return '\n'.join(lines)


def run_markdown(run: dict) -> str:
    """One paragraph of a results file's ``run`` record
    (:func:`mmseg_ood.utils.run_record.run_record`): what a rerun needs."""
    seed = run.get('seed') or {}
    threads = run.get('threads') or {}
    versions = run.get('versions') or {}
    det = run.get('deterministic') or {}
    commit = run.get('commit')
    commit = 'no git checkout' if commit is None else (
        commit[:10] + (' + uncommitted changes' if run.get('dirty') else ''))
    machine = run.get('machine') or {}
    return ('Run: seed {} (checkpoint trained with seed {}), {} torch '
            'threads (OMP_NUM_THREADS={}), deterministic={}; {}; commit {};'
            ' {} {}, {} CPUs. The same numbers to the last digit need all '
            'of this and the same machine type.').format(
                seed.get('run'), seed.get('checkpoint_training'),
                threads.get('torch'), threads.get('OMP_NUM_THREADS'),
                det.get('config'),
                ', '.join(f'{k} {v}' for k, v in versions.items()
                          if v is not None), commit,
                machine.get('device'), machine.get('arch'),
                machine.get('cpus'))


def write_results(work_dir: str, payload: dict,
                  extra_markdown: str = '') -> Dict[str, str]:
    """Write ``results.json``, ``results.csv`` and ``results.md`` (with
    ``extra_markdown`` appended).

    Each file is written to a temporary name and renamed, so a file named
    ``results.*`` is always complete. Undefined metrics (NaN) are ``null``
    in the JSON, empty in the CSV and ``n/a`` in the Markdown table.
    """
    os.makedirs(work_dir, exist_ok=True)
    paths = {k: osp.join(work_dir, f'results.{k}')
             for k in ('json', 'csv', 'md')}
    results = payload['results']
    dump_json(payload, paths['json'])
    rows = []
    for d, per in results.items():
        for s, r in per.items():
            rows.append(dict(dataset=d, scorer=s,
                             **{k: json_safe(r.get(k)) for k, _ in COLUMNS},
                             best_f1=json_safe(r.get('best_f1')),
                             best_f1_threshold=json_safe(
                                 r.get('best_f1_threshold')),
                             component_threshold=json_safe(
                                 r.get('component_threshold')),
                             num_ood=r.get('num_ood'), num_id=r.get('num_id'),
                             **{k: json_safe(r.get(k)) for k in (
                                 'per_image_auroc', 'per_image_ap',
                                 'per_image_fpr95', 'per_image_images',
                                 'per_image_skipped') if k in r},
                             **{f'{k}_ci_{end}': json_safe(r[f'{k}_ci'][j])
                                for k in _POOLED if f'{k}_ci' in r
                                for j, end in enumerate(('low', 'high'))}))
    with open(paths['csv'] + '.tmp', 'w', newline='') as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    os.replace(paths['csv'] + '.tmp', paths['csv'])
    md = '# OOD results\n\n' + markdown_table(results, payload.get('id_miou'))
    if extra_markdown:
        md += '\n\n' + extra_markdown
    if payload.get('run'):
        md += '\n\n' + run_markdown(payload['run'])
    if payload.get('tuning'):
        md += '\n\n## Tuning\n\n' + json.dumps(json_safe(payload['tuning']),
                                               indent=2)
    atomic_write_text(paths['md'], md + '\n')
    return paths


def write_per_image(path: str, rows_by_dataset: Dict[str, list]) -> str:
    """``per_image.csv``: one row per (dataset, image, scorer) with the
    image's AUROC / AP / FPR95, and each skipped image with the reason
    (rows of
    :meth:`~mmseg_ood.evaluation.accumulators.per_image.PerImageOODMetrics.
    table`)."""
    fields = ['dataset', 'image', 'scorer', 'auroc', 'ap', 'fpr95',
              'skipped']
    with open(path + '.tmp', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for dataset, rows in rows_by_dataset.items():
            for row in rows:
                w.writerow(dict(json_safe(row), dataset=dataset))
    os.replace(path + '.tmp', path)
    return path


def save_figure(fig, path: str, dpi: int = 100) -> str:
    """Lay out, write and close a matplotlib figure; return ``path``."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_roc_pr(out_dir: str, dataset: str, pixel_metrics: dict,
                results: dict) -> Dict[str, str]:
    """ROC and precision-recall curves of all scorers on one plot each."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for kind in ('roc', 'pr'):
        fig, ax = plt.subplots(figsize=(6, 5))
        for name, metric in pixel_metrics.items():
            c = metric.curve()
            if c['tpr'].size == 0:
                continue
            r = results.get(name, {})
            if kind == 'roc':
                ax.plot(c['fpr'], c['tpr'],
                        label=f'{name} (AUROC {percent(r.get("auroc"))})')
            else:
                ax.plot(c['tpr'], c['precision'],
                        label=f'{name} (AP {percent(r.get("ap"))})')
        if kind == 'roc':
            ax.set(xlabel='false positive rate', ylabel='true positive rate',
                   title=f'ROC - {dataset}')
        else:
            ax.set(xlabel='recall', ylabel='precision',
                   title=f'precision-recall - {dataset}')
        ax.legend(fontsize=7, loc='best')
        ax.grid(alpha=0.3)
        paths[kind] = save_figure(
            fig, osp.join(out_dir, f'{dataset}_{kind}.png'))
    return paths
