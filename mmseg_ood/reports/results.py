"""Result files of ``tools/ood_test.py``: JSON, CSV, Markdown, curves.

Every file is written atomically (:mod:`mmseg_ood.utils.files`): a file
named ``results.*`` is complete or absent, never half written.
``results.json`` carries ``schema_version``
(:data:`RESULTS_SCHEMA_VERSION`); :func:`load_results` reads it back with
a :class:`~mmseg_ood.errors.DamagedFileError` naming the file and the field
for anything malformed.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import os.path as osp
from typing import Dict, Iterable, List, Sequence

from ..errors import DamagedFileError, InvalidValueError
from ..utils.files import (atomic_output, atomic_write_text,
                           check_output_dir, check_schema_version, dump_json,
                           expect_field, json_safe, load_json)

__all__ = [
    'RESULTS_SCHEMA_VERSION', 'COLUMNS', 'PER_IMAGE_COLUMNS',
    'table_columns', 'finite_number', 'percent', 'percent_ci', 'md_cell',
    'markdown_table',
    'comparison_table', 'run_markdown', 'write_results', 'write_per_image',
    'load_results', 'results_datasets', 'check_dataset', 'csv_text',
    'save_figure', 'plot_roc_pr'
]

#: ``schema_version`` of ``results.json``. Version 0 (no field) is a file
#: written before versions were recorded; its layout is the same, and it is
#: read alike.
RESULTS_SCHEMA_VERSION = 1

COLUMNS = (('auroc', 'AUROC'), ('ap', 'AP'), ('fpr95', 'FPR95'),
           ('siou', 'sIoU'), ('ppv', 'PPV'), ('mean_f1', 'mean F1'))
#: Pixel metrics averaged over images (``OODMetric(per_image=True)``).
PER_IMAGE_COLUMNS = (('per_image_auroc', 'AUROC'), ('per_image_ap', 'AP'),
                     ('per_image_fpr95', 'FPR95'))
_POOLED = ('auroc', 'ap', 'fpr95')
#: Keys of a result row that hold a number (or ``null``: undefined).
_NUMERIC = tuple(k for k, _ in COLUMNS + PER_IMAGE_COLUMNS) + (
    'best_f1', 'best_f1_threshold', 'component_threshold', 'num_ood',
    'num_id', 'per_image_images', 'per_image_skipped')


def table_columns(rows) -> list:
    """``(key, title)`` of the columns of result rows (scorer -> metric ->
    value dicts): :data:`COLUMNS`, and where any row has per-image
    metrics, those too, each pixel metric labelled "pooled" or "per
    image".

    Args:
        rows: An iterable of result rows (metric key -> value dicts, one per
            scorer and dataset).

    Returns:
        list: ``(key, title)`` pairs, e.g. ``('auroc', 'AUROC (pooled)')``.
    """
    rows = list(rows)
    if not any('per_image_ap' in r for r in rows):
        return list(COLUMNS)
    return [(k, f'{t} (pooled)' if k in _POOLED else t)
            for k, t in COLUMNS] + [(k, f'{t} (per image)')
                                    for k, t in PER_IMAGE_COLUMNS]


def finite_number(value) -> bool:
    """Is ``value`` a finite int or float (not a bool, ``None``, NaN or
    infinity): a number a table or a tracker can show?

    Args:
        value: Anything.

    Returns:
        bool: Whether it is a finite number.
    """
    return isinstance(value, (int, float)) and not isinstance(
        value, bool) and math.isfinite(value)


def percent(v) -> str:
    """A metric in percent with two decimals; ``n/a`` for None, NaN or
    infinity (``null`` in ``results.json``).

    Args:
        v: A metric as a fraction (``0.1910``), or ``None``.

    Returns:
        str: E.g. ``'19.10'``, or ``'n/a'``.
    """
    return 'n/a' if v is None or (isinstance(v, float) and
                                  not math.isfinite(v)) \
        else f'{100 * v:.2f}'


def percent_ci(row: dict, key: str) -> str:
    """``percent(row[key])``, and where the row has a bootstrap interval
    ``row[key + '_ci']`` (``OODMetric(bootstrap=...)``), the interval in
    brackets: ``19.10 [15.20, 23.40]``.

    Args:
        row: One scorer's results on one dataset (metric key -> value).
        key: The metric's key, e.g. ``'auroc'``.

    Returns:
        str: The cell's text.
    """
    text = percent(row.get(key))
    ci = row.get(f'{key}_ci')
    if ci is not None:
        text += f' [{percent(ci[0])}, {percent(ci[1])}]'
    return text


def md_cell(text) -> str:
    """``text`` as one cell of a Markdown table: ``|`` escaped, line
    breaks as spaces (a name holding either would split or end the
    row).

    Args:
        text: Anything; ``str()`` of it is taken.

    Returns:
        str: The escaped text.
    """
    return str(text).replace('|', '\\|').replace('\r', ' ').replace(
        '\n', ' ')


def markdown_table(results: Dict[str, Dict[str, dict]],
                   id_miou: Dict[str, float] = None) -> str:
    """Rows: scorer; columns: per dataset AUROC, AP, FPR95, sIoU, PPV,
    mean F1 (percent; ``n/a`` where undefined; bootstrap intervals in
    brackets where the results have them, :func:`percent_ci`).

    Args:
        results: Dataset -> scorer -> metric key -> value (fractions), as
            ``results.json`` holds them.
        id_miou: Name -> in-distribution mIoU in percent (``None`` for
            undefined), listed below the table; ``None`` or empty: no such
            line.

    Returns:
        str: The Markdown table, then a note on pooled / per-image metrics
        where the results have per-image ones, then the ID mIoU line.
    """
    datasets = list(results)
    scorers = list(dict.fromkeys(s for d in datasets for s in results[d]))
    columns = table_columns(r for d in datasets for r in results[d].values())
    head = ['scorer'] + [f'{md_cell(d)} {t}' for d in datasets
                         for _, t in columns]
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for s in scorers:
        row = [md_cell(s)]
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
                f'{r.get("per_image_skipped")} skipped'
                for d, r in dict(per_image).items()) + ').'
    if id_miou:
        text += '\n\nIn-distribution mIoU: ' + ', '.join(
            f'{k}: ' + ('n/a' if v is None else f'{v:.2f}')
            for k, v in id_miou.items())
    return text


def results_datasets(runs: Dict[str, dict]) -> List[str]:
    """The datasets every run of ``runs`` (name -> ``results.json``
    payload) has results on, in the first run's order.

    Args:
        runs: Run name -> the payload of its ``results.json``.

    Returns:
        list: The dataset names; empty for no runs.

    Raises:
        InvalidValueError: no dataset is common to all runs (the message
            lists each run's).
    """
    names = list(runs)
    if not names:
        return []
    common = [d for d in runs[names[0]].get('results', {})
              if all(d in runs[n].get('results', {}) for n in names)]
    if not common:
        have = '; '.join(f'{n!r}: {sorted(runs[n].get("results", {}))}'
                         for n in names)
        raise InvalidValueError(
            f'no dataset has results in every run ({have}); compare runs '
            'evaluated on a common dataset, or name one with --dataset')
    return common


def check_dataset(runs: Dict[str, dict], dataset: str,
                  files: Dict[str, str] = None) -> None:
    """Refuse ``dataset`` when a run has no results on it, naming the run
    (and its file, from ``files``) and the datasets it has.

    Args:
        runs: Run name -> the payload of its ``results.json``.
        dataset: The dataset every run must have results on.
        files: Run name -> the file it was read from, for the message;
            optional.

    Raises:
        InvalidValueError: a run has no results on ``dataset``.
    """
    for name, payload in runs.items():
        have = payload.get('results', {})
        if dataset not in have:
            where = f' ({files[name]})' if files and name in files else ''
            raise InvalidValueError(
                f'run {name!r}{where} has no results on {dataset!r}; it has '
                f'{sorted(have)}: choose one with --dataset')


def comparison_table(runs: Dict[str, dict], dataset: str,
                     scorers=('msp', 'entropy', 'max_logit', 'energy',
                              'background', 'rba', 'no_object'),
                     columns=('auroc', 'ap', 'fpr95')) -> str:
    """One table over several models: rows (model, scorer), columns ID mIoU
    and the pixel metrics on ``dataset``.

    Args:
        runs: Model name -> the payload of its ``results.json``
            (:func:`load_results`).
        dataset: The OOD dataset to report.
        scorers: Scorers to list, where a model has them.
        columns: Metric keys of :data:`COLUMNS`.

    Raises:
        InvalidValueError: a run is incomplete, or has no results on
            ``dataset`` (the message lists the datasets it has).
    """
    titles = dict(COLUMNS)
    head = ['model', 'ID mIoU', 'scorer'] + [titles[c] for c in columns]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for model, payload in runs.items():
        if not payload.get('complete', True):
            raise InvalidValueError(
                f'the results of {model!r} are incomplete '
                '(results.partial.json); rerun its evaluation')
        check_dataset({model: payload}, dataset)
        per = payload['results'][dataset]
        miou = (payload.get('id_miou') or {}).get('test_set')
        miou = 'n/a' if miou is None else f'{miou:.2f}'
        for s in scorers:
            if s in per:
                lines.append('| ' + ' | '.join(
                    [md_cell(model), miou, md_cell(s)] +
                    [percent(per[s].get(c)) for c in columns]) + ' |')
    return '\n'.join(lines)


def run_markdown(run: dict) -> str:
    """One paragraph of a results file's ``run`` record
    (:func:`mmseg_ood.utils.run_record.run_record`): what a rerun needs.

    Args:
        run: The ``run`` record: ``seed``, ``threads``, ``deterministic``,
            ``versions``, ``commit``, ``dirty`` and ``machine``; missing
            fields print as ``None``.

    Returns:
        str: One paragraph of Markdown.
    """
    seed = run.get('seed') or {}
    threads = run.get('threads') or {}
    versions = run.get('versions') or {}
    det = run.get('deterministic') or {}
    commit = run.get('commit')
    commit = 'no git checkout' if commit is None else (
        str(commit)[:10] +
        (' + uncommitted changes' if run.get('dirty') else ''))
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


def csv_text(rows: Sequence[dict], fields: Iterable[str] = ()) -> str:
    """``rows`` as CSV text with a header: the columns are ``fields``, then
    every other key in the order the rows first have it (a row lacking a
    column leaves it empty). No rows and no ``fields``: empty text.

    Args:
        rows: The rows, each a dict of column -> value.
        fields: Columns to put first, in this order (also when no row has
            them).

    Returns:
        str: The CSV text (``\\r\\n`` line ends, as ``csv`` writes).
    """
    fields = list(dict.fromkeys(list(fields) +
                                [k for r in rows for k in r]))
    if not fields:
        return ''
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, restval='')
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_results(work_dir: str, payload: dict,
                  extra_markdown: str = '') -> Dict[str, str]:
    """Write ``results.json``, ``results.csv`` and ``results.md`` (with
    ``extra_markdown`` appended).

    Every text is made before any file is written, and each file is
    written atomically (:func:`~mmseg_ood.utils.files.atomic_output`), so
    a file named ``results.*`` is always complete and a failure leaves the
    previous ones as they were. ``results.json`` gets ``schema_version``
    :data:`RESULTS_SCHEMA_VERSION`. Undefined metrics (NaN) are ``null``
    in the JSON, empty in the CSV and ``n/a`` in the Markdown table.

    Args:
        work_dir: The folder (created if missing).
        payload: What ``results.json`` holds; ``payload['results']`` is
            dataset -> scorer -> metric -> value.
        extra_markdown: Appended to ``results.md``.

    Returns:
        ``{'json': ..., 'csv': ..., 'md': ...}``: the paths written.

    Raises:
        OutputPathError: ``work_dir`` is a file.
    """
    check_output_dir(work_dir, 'work dir')
    paths = {k: osp.join(work_dir, f'results.{k}')
             for k in ('json', 'csv', 'md')}
    results = payload['results']
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
                                for k in _POOLED if r.get(f'{k}_ci')
                                for j, end in enumerate(('low', 'high'))}))
    table = csv_text(rows)
    md = '# OOD results\n\n' + markdown_table(results, payload.get('id_miou'))
    if extra_markdown:
        md += '\n\n' + extra_markdown
    if payload.get('run'):
        md += '\n\n' + run_markdown(payload['run'])
    if payload.get('tuning'):
        md += '\n\n## Tuning\n\n' + json.dumps(json_safe(payload['tuning']),
                                               indent=2)
    os.makedirs(work_dir, exist_ok=True)
    dump_json({'schema_version': RESULTS_SCHEMA_VERSION,
               **{k: v for k, v in payload.items()
                  if k != 'schema_version'}}, paths['json'])
    atomic_write_text(paths['csv'], table)
    atomic_write_text(paths['md'], md + '\n')
    return paths


def write_per_image(path: str, rows_by_dataset: Dict[str, list]) -> str:
    """``per_image.csv``: one row per (dataset, image, scorer) with the
    image's AUROC / AP / FPR95 and its ground truth's facts (ID / OOD /
    void pixels, OOD share of the labelled pixels, OOD components), and
    each skipped image with the reason
    (rows of
    :meth:`~mmseg_ood.evaluation.accumulators.per_image.PerImageOODMetrics.
    table`), written atomically. Returns ``path``.

    Args:
        path: The CSV file to write.
        rows_by_dataset: Dataset -> its rows (``image``, ``scorer``,
            ``auroc``, ``ap``, ``fpr95``, the facts of
            :data:`~mmseg_ood.evaluation.accumulators.per_image.IMAGE_FACTS`,
            ``skipped``).

    Returns:
        str: ``path``.
    """
    fields = ['dataset', 'image', 'scorer', 'auroc', 'ap', 'fpr95',
              'id_pixels', 'ood_pixels', 'void_pixels', 'ood_share',
              'ood_components', 'skipped']
    rows = [dict(json_safe(row), dataset=dataset)
            for dataset, per in rows_by_dataset.items() for row in per]
    atomic_write_text(path, csv_text(rows, fields))
    return path


# reading ---------------------------------------------------------------------
_NUMBER = (float, type(None))


def load_results(path: str, what: str = 'results file') -> dict:
    """Read a ``results.json`` that ``tools/ood_test.py`` wrote, checking
    the structure its readers use.

    Accepted: schema versions 0 (no ``schema_version``: files written
    before it was recorded) to :data:`RESULTS_SCHEMA_VERSION`. Checked:
    ``results`` (dataset -> scorer -> metrics, each metric a number or
    ``null``, a bootstrap interval two of them), ``complete``,
    ``id_miou``, ``background_iou`` and ``open_set_iou`` where present.

    Args:
        path: The file.
        what: How messages name it.

    Returns:
        The payload.

    Raises:
        MissingInputError: no such file.
        DamagedFileError: not JSON (truncated, not UTF-8, nested too
            deeply), not an object, a newer schema version, or a field of
            the wrong type; the message names the file and the field.
    """
    payload = load_json(path, what)
    check_schema_version(payload, path, what, RESULTS_SCHEMA_VERSION)
    where = f'{what} {path}'
    expect_field(payload, 'complete', bool, where, default=True)
    results = expect_field(payload, 'results', dict, where)
    for dataset in results:
        per = expect_field(results, dataset, dict, f'{where}: results')
        for scorer in per:
            row = expect_field(per, scorer, dict,
                               f'{where}: results.{dataset}')
            at = f'{where}: results.{dataset}.{scorer}'
            for key in _NUMERIC:
                expect_field(row, key, _NUMBER, at, default=None)
            for key in _POOLED:
                ci = expect_field(row, f'{key}_ci', (list, type(None)), at,
                                  default=None)
                if ci is not None and (len(ci) != 2 or not all(
                        v is None or (isinstance(v, (int, float)) and
                                      not isinstance(v, bool))
                        for v in ci)):
                    raise DamagedFileError(
                        f'{at}: the field {key + "_ci"!r} must be two '
                        f'numbers (low, high), got {ci!r}'[:300])
    id_miou = expect_field(payload, 'id_miou', (dict, type(None)), where,
                           default=None)
    if id_miou is not None:
        for key in id_miou:
            expect_field(id_miou, key, _NUMBER, f'{where}: id_miou')
    background = expect_field(payload, 'background_iou', (dict, type(None)),
                              where, default=None)
    for dataset in background or {}:
        entry = expect_field(background, dataset, dict,
                             f'{where}: background_iou')
        at = f'{where}: background_iou.{dataset}'
        expect_field(entry, 'applicable', bool, at, default=False)
        expect_field(entry, 'pooled', _NUMBER, at, default=None)
    open_set = expect_field(payload, 'open_set_iou', (dict, type(None)),
                            where, default=None)
    if open_set:
        at = f'{where}: open_set_iou'
        thresholds = expect_field(open_set, 'thresholds', list, at)
        miou = expect_field(open_set, 'miou', list, at)
        expect_field(open_set, 'plain', _NUMBER, at)
        if len(thresholds) != len(miou) or not all(
                v is None or (isinstance(v, (int, float)) and
                              not isinstance(v, bool))
                for v in thresholds + miou):
            raise DamagedFileError(
                f'{at}: thresholds and miou must be lists of numbers of '
                f'one length, got {len(thresholds)} and {len(miou)} '
                'entries')
    return payload


# figures ---------------------------------------------------------------------
def save_figure(fig, path: str, dpi: int = 100, tight: bool = True) -> str:
    """Lay out (``tight``), write atomically and close a matplotlib figure;
    return ``path``.

    The image goes to a temporary file beside ``path`` and replaces it
    only once complete (:func:`~mmseg_ood.utils.files.atomic_output`); its
    format is ``path``'s extension (PNG without one). The figure is closed
    whatever happens.

    Args:
        fig: A matplotlib ``Figure``.
        path: The image file; its extension sets the format.
        dpi: Resolution in dots per inch.
        tight: Call ``fig.tight_layout()`` first.

    Returns:
        str: ``path``.

    Raises:
        OutputPathError: ``path`` is a folder, or its folder does not
            exist.
    """
    import matplotlib.pyplot as plt
    fmt = osp.splitext(path)[1][1:].lower() or 'png'
    try:
        if tight:
            fig.tight_layout()
        with atomic_output(path, what='figure') as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt)
    finally:
        plt.close(fig)
    return path


def plot_roc_pr(out_dir: str, dataset: str, pixel_metrics: dict,
                results: dict) -> Dict[str, str]:
    """ROC and precision-recall curves of all scorers on one plot each.

    Args:
        out_dir: The folder of the figures (created if missing).
        dataset: The dataset's name, for the titles and file names.
        pixel_metrics: Scorer -> its
            :class:`~mmseg_ood.evaluation.PixelOODAccumulator` (its
            ``curve()`` is drawn; a scorer without a curve is left out).
        results: Scorer -> its metrics, for the AUROC / AP in the legend.

    Returns:
        dict: ``{'roc': path, 'pr': path}`` of
        ``<out_dir>/<dataset>_roc.png`` and ``<dataset>_pr.png``.
    """
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
