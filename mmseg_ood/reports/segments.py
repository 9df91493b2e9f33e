"""Result files of ``tools/meta_classify.py``: the entropy-maximization
paper's Table 2 (detection errors), Table 3 (meta-classification AUROC /
AUPRC) and Fig. 7 (errors against the threshold), as Markdown, CSV and
PNG.

``meta_results.json`` carries ``schema_version``
(:data:`META_RESULTS_SCHEMA_VERSION`); :func:`load_meta_results` reads it
back with a :class:`~mmseg_ood.errors.DamagedFileError` naming the file
and the field for anything malformed."""
from __future__ import annotations

import math
import os
import os.path as osp
from typing import Dict, List

from ..errors import DamagedFileError, MissingFieldError
from ..utils.files import (atomic_write_text, check_output_dir,
                           check_schema_version, dump_json, expect_field,
                           load_json)
from .results import csv_text, md_cell, percent, save_figure

__all__ = [
    'detection_errors_markdown', 'false_positive_detection_markdown',
    'segment_tables_markdown', 'plot_detection_errors', 'write_meta_results',
    'load_meta_results', 'META_RESULTS_SCHEMA_VERSION'
]

#: ``schema_version`` of ``meta_results.json`` (files without the field,
#: written before it was recorded, are version 0, of the same layout).
META_RESULTS_SCHEMA_VERSION = 1

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
        raise MissingFieldError(
            f'no segment results on {dataset!r}; there are '
            f'{sorted(payload["results"])}')
    return per


def _md_row(cells) -> str:
    return '| ' + ' | '.join(md_cell(c) for c in cells) + ' |'


def detection_errors_markdown(runs: Dict[str, dict], dataset: str) -> str:
    """Table 2: per threshold, FP / FN / sum / ID-pixel miss rate (%) of
    each run (model), without and with its meta classifier.

    Args:
        runs: Name -> the payload of a ``meta_results.json``.
        dataset: The dataset to report.

    Returns:
        str: The Markdown table, one row per threshold (the union over the
        runs, ascending).

    Raises:
        MissingFieldError: a run has no results on ``dataset``.
    """
    groups = [(name, payload) for name, payload in runs.items()]
    head = ['t']
    for name, _ in groups:
        for variant, suffix in _VARIANTS:
            group = (name + suffix if len(groups) > 1 else
                     'baseline' if variant == 'baseline' else '+ meta')
            head += [f'{group} {c}'
                     for c in ('FP', 'FN', 'Σ', 'ε % (ID miss)')]
    lines = [_md_row(head), '|' + '---|' * len(head)]
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
    classifier (cross-validated), for each run.

    Args:
        runs: Name -> the payload of a ``meta_results.json``.
        dataset: The dataset to report.

    Returns:
        str: The Markdown table (four decimals; ``n/a`` where undefined).

    Raises:
        MissingFieldError: a run has no results on ``dataset``.
    """
    head = ['t']
    for name in runs:
        pre = f'{name} ' if len(runs) > 1 else ''
        head += [f'{pre}MSP AUROC', f'{pre}MSP AUPRC',
                 f'{pre}+ meta AUROC', f'{pre}+ meta AUPRC']
    lines = [_md_row(head), '|' + '---|' * len(head)]
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
    none).

    Args:
        runs: Name -> the payload of a ``meta_results.json``; the sizes
            (images, objects) are the first run's.
        dataset: The dataset to report.

    Returns:
        str: Markdown: the sizes, both tables and the notes.

    Raises:
        MissingFieldError: no results on ``dataset`` at any threshold.
    """
    first = next(iter(runs.values()))
    row = next(iter(_rows(first, dataset).values()), None)
    if row is None:
        raise MissingFieldError(f'no segment results at any threshold on '
                                f'{dataset!r}')
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
    paper's pie markers turn red at 0.1%).

    Args:
        path: The image file.
        runs: Name -> the payload of a ``meta_results.json``; a variant
            (``+ meta``) missing at any threshold is not drawn.
        dataset: The dataset to draw.

    Returns:
        str: ``path``.
    """
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
    """Write ``meta_results.json`` (with ``schema_version``), ``.csv``,
    ``.md`` and one ``detection_errors_<dataset>.png`` per dataset.

    The tables are made before any file is written, and each file is
    written atomically, ``meta_results.json`` last: a failure leaves no
    partial file under a final name.

    Args:
        work_dir: The folder (created if missing).
        payload: What ``meta_results.json`` holds: ``scorer``, ``cv`` and
            ``results`` (dataset -> threshold -> row; see
            :func:`load_meta_results`).
        name: The run's name in the figures' legends.

    Returns:
        dict: ``json``, ``csv``, ``md`` and ``png_<dataset>`` -> path.

    Raises:
        OutputPathError: ``work_dir`` is a file.
    """
    check_output_dir(work_dir, 'work dir')
    paths = {k: osp.join(work_dir, f'meta_results.{k}')
             for k in ('json', 'csv', 'md')}
    table = csv_text(_csv_rows(payload), ['dataset'])
    runs = {name: payload}
    md = [f'# Meta classification of {payload["scorer"]} segments\n',
          f'Cross-validation: `{payload["cv"]}`.\n']
    for dataset in payload['results']:
        md += [f'## {dataset}\n', segment_tables_markdown(runs, dataset)]
    os.makedirs(work_dir, exist_ok=True)
    for dataset in payload['results']:
        png = osp.join(work_dir, f'detection_errors_{dataset}.png')
        paths[f'png_{dataset}'] = plot_detection_errors(png, runs, dataset)
    atomic_write_text(paths['csv'], table)
    atomic_write_text(paths['md'], '\n'.join(md))
    dump_json({'schema_version': META_RESULTS_SCHEMA_VERSION,
               **{k: v for k, v in payload.items()
                  if k != 'schema_version'}}, paths['json'])
    return paths


_COUNT = (int, type(None))
_NUMBER = (float, type(None))


def load_meta_results(path: str, what: str = 'meta results file') -> dict:
    """Read a ``meta_results.json`` that ``tools/meta_classify.py`` wrote,
    checking what the tables and Fig. 7 read.

    Accepted: schema versions 0 (no field) to
    :data:`META_RESULTS_SCHEMA_VERSION`. Checked: ``results`` (dataset ->
    threshold -> row: ``images``, ``baseline`` and ``meta`` detection
    errors, the AUROC / AUPRC numbers, ``note`` / ``cv`` texts), each
    threshold a number.

    Args:
        path: The file.
        what: How messages name it.

    Returns:
        dict: The payload.

    Raises:
        MissingInputError: no such file.
        DamagedFileError: not JSON, not an object, a newer schema, an
            incomplete run, or a field of the wrong type (named).
    """
    payload = load_json(path, what)
    check_schema_version(payload, path, what, META_RESULTS_SCHEMA_VERSION)
    where = f'{what} {path}'
    if not expect_field(payload, 'complete', bool, where, default=True):
        raise DamagedFileError(f'{where} is marked incomplete: rerun '
                               'tools/meta_classify.py')
    expect_field(payload, 'scorer', str, where, default='score')
    results = expect_field(payload, 'results', dict, where)
    for dataset in results:
        per = expect_field(results, dataset, dict, f'{where}: results')
        for t in per:
            try:
                float(t)
            except ValueError:
                raise DamagedFileError(
                    f'{where}: results.{dataset}: the threshold {t!r} is '
                    'not a number') from None
            row = expect_field(per, t, dict, f'{where}: results.{dataset}')
            at = f'{where}: results.{dataset}.{t}'
            expect_field(row, 'images', int, at)
            for key in ('note', 'cv'):
                expect_field(row, key, (str, type(None)), at, default=None)
            for key in ('msp_auroc', 'msp_auprc', 'meta_auroc',
                        'meta_auprc'):
                expect_field(row, key, _NUMBER, at, default=None)
            for variant, _ in _VARIANTS:
                errors = expect_field(
                    row, variant, dict, at) if variant == 'baseline' else \
                    expect_field(row, variant, (dict, type(None)), at,
                                 default=None)
                if errors is None:
                    continue
                for key in ('fp', 'fn', 'errors', 'objects'):
                    expect_field(errors, key, int, f'{at}.{variant}')
                for key in ('tp', 'segments'):
                    expect_field(errors, key, _COUNT, f'{at}.{variant}',
                                 default=None)
                expect_field(errors, 'id_miss_rate', _NUMBER,
                             f'{at}.{variant}', default=None)
    return payload
