"""Self-contained HTML reports of ``ood_test`` runs (``report.html``).

One file, opened with no network: figures embedded as ``data:`` URIs, the
style and the table-sorting script inline. A run's report holds

- the run's settings (config, checkpoint, datasets, scorers, seed,
  determinism, threads, library versions, commit, machine);
- per dataset, the results table (every metric of ``results.json``, best
  value per column marked), the ROC and precision-recall curves of all
  scorers overlaid, the ID / OOD score histograms of each scorer and the
  heatmaps of the images with the highest and lowest per-image AP, where
  the run wrote them;
- the ID mIoU and the run's other sections (bootstrap intervals,
  component thresholds, meta-classification, tuning, background IoU) as
  its ``results.md`` has them, with their figures;
- with ``--per-image``, every image's metrics and ground-truth facts in a
  table sortable by any column (click a header).

:func:`comparison_report_html` is the same for several runs side by side
(``compare_results --report``).

Every metric cell carries its value as ``results.json`` holds it
(``data-value``, a fraction, Python's shortest round-trip ``repr``), so a
reader (or a test in a browser) can check the shown percent against the
file.
"""
from __future__ import annotations

import base64
import glob
import html
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import InvalidValueError
from ..utils.files import atomic_write_text
from .results import (COLUMNS, PER_IMAGE_COLUMNS, finite_number, percent,
                      table_columns)

__all__ = ['run_report_html', 'write_run_report', 'comparison_report_html',
           'write_comparison_report', 'LOWER_IS_BETTER', 'best_values']

#: Metrics where the lowest value is the best (the rest: the highest).
LOWER_IS_BETTER = frozenset({'fpr95', 'per_image_fpr95', 'ece'})
#: Metric key -> column title, pooled and per image.
_TITLES = dict(COLUMNS, component_threshold='component threshold',
               **{k: f'{t} (per image)' for k, t in PER_IMAGE_COLUMNS})

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em
auto;max-width:1400px;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;
padding-bottom:.2em;margin-top:1.8em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f2f2f2}td.text,th.text{text-align:left}
td.best{font-weight:bold;background:#e3f4e3}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:' \\25B2'}
table.sortable th[aria-sort=descending]::after{content:' \\25BC'}
.figures{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
figure{margin:0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555}
.note{color:#555;font-size:.9em}.scroll{overflow-x:auto}
nav a{margin-right:1em}
"""

_SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var up = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(heads, function (h) {
        h.removeAttribute('aria-sort');
      });
      th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        var v = cell.getAttribute('data-value');
        if (v === null) { return cell.textContent; }
        var x = parseFloat(v);
        return isNaN(x) ? null : x;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) {
          return (x === null) - (y === null);
        }
        var d = typeof x === 'number' && typeof y === 'number' ?
          x - y : String(x).localeCompare(String(y));
        return up ? d : -d;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def best_values(rows: Dict[str, dict], keys: Iterable[str]
                ) -> Dict[str, float]:
    """The best finite value of each metric over ``rows``.

    Args:
        rows: Row name -> metric key -> value.
        keys: The metrics; the lowest value is the best for those of
            :data:`LOWER_IS_BETTER`, the highest for the others.

    Returns:
        dict: Metric -> its best value (metrics with no finite value are
        left out).
    """
    out = {}
    for k in keys:
        values = [r.get(k) for r in rows.values() if finite_number(r.get(k))]
        if values:
            out[k] = min(values) if k in LOWER_IS_BETTER else max(values)
    return out


def _metric_cell(row: dict, key: str, best: Dict[str, float],
                 attrs: str = '') -> str:
    v = row.get(key)
    fmt = (lambda x: 'n/a' if x is None else f'{x:.4g}') \
        if key == 'component_threshold' else percent
    text = fmt(v if finite_number(v) else None)
    ci = row.get(f'{key}_ci')
    if ci is not None and len(ci) == 2:
        text += f' [{percent(ci[0])}, {percent(ci[1])}]'
    marked = key in best and finite_number(v) and v == best[key] and \
        key != 'component_threshold'
    cls = ' class="best"' if marked else ''
    value = repr(float(v)) if finite_number(v) else 'NaN'
    return (f'<td{cls} data-key="{_esc(key)}" data-value="{value}"'
            f'{attrs}>{_esc(text)}</td>')


def _results_table(results: Dict[str, dict], dataset: str) -> str:
    """The scorers of one dataset: every column of the results files,
    best per column marked."""
    columns = table_columns(results.values())
    if any('component_threshold' in r for r in results.values()):
        columns.append(('component_threshold', 'component threshold'))
    best = best_values(results, [k for k, _ in columns])
    head = ''.join(f'<th>{_esc(t)}</th>' for _, t in columns)
    lines = [f'<table class="results sortable" data-dataset='
             f'"{_esc(dataset)}"><thead><tr><th class="text">scorer</th>'
             f'{head}</tr></thead><tbody>']
    for scorer, row in results.items():
        attrs = f' data-scorer="{_esc(scorer)}"'
        cells = ''.join(_metric_cell(row, k, best, attrs)
                        for k, _ in columns)
        lines.append(f'<tr><td class="text">{_esc(scorer)}</td>{cells}</tr>')
    lines.append('</tbody></table>')
    return '\n'.join(lines)


def _image(path: str, caption: str) -> str:
    """A PNG / JPEG file as an embedded figure."""
    ext = osp.splitext(path)[1].lower()
    mime = 'image/jpeg' if ext in ('.jpg', '.jpeg') else 'image/png'
    with open(path, 'rb') as f:
        data = base64.b64encode(f.read()).decode('ascii')
    return (f'<figure><img src="data:{mime};base64,{data}" '
            f'alt="{_esc(caption)}"><figcaption>{_esc(caption)}'
            '</figcaption></figure>')


def _figures(paths: Sequence[Tuple[str, str]]) -> str:
    present = [(p, c) for p, c in paths if osp.isfile(p)]
    if not present:
        return ''
    return '<div class="figures">' + ''.join(
        _image(p, c) for p, c in present) + '</div>'


def _settings(payload: dict) -> str:
    run = payload.get('run') or {}
    seed = run.get('seed') or {}
    versions = run.get('versions') or {}
    machine = run.get('machine') or {}
    threads = run.get('threads') or {}
    scorers = list(dict.fromkeys(
        s for per in (payload.get('results') or {}).values() for s in per))
    commit = run.get('commit')
    if commit and run.get('dirty'):
        commit = f'{commit} (uncommitted changes)'
    rows = [
        ('config', payload.get('config')),
        ('checkpoint', payload.get('checkpoint')),
        ('datasets', ', '.join(payload.get('datasets') or [])),
        ('scorers', ', '.join(scorers)),
        ('seed', f'run {seed.get("run")}, checkpoint trained with '
                 f'{seed.get("checkpoint_training")}'),
        ('deterministic', ', '.join(f'{k}={v}' for k, v in
                                    (run.get('deterministic') or {}).items())),
        ('threads', ', '.join(f'{k}={v}' for k, v in threads.items())),
        ('versions', ', '.join(f'{k} {v}' for k, v in versions.items())),
        ('commit', commit),
        ('machine', ', '.join(f'{k} {v}' for k, v in machine.items()
                              if v is not None)),
        ('complete', payload.get('complete')),
    ]
    body = ''.join(f'<tr><th class="text">{_esc(k)}</th><td class="text">'
                   f'{_esc("" if v is None else v)}</td></tr>'
                   for k, v in rows)
    return f'<table class="settings">{body}</table>'


def _markdown(text: str) -> str:
    """Markdown (the run's ``results.md`` sections: paragraphs and pipe
    tables) as HTML, by markdown-it (a dependency of mmengine's rich)."""
    from markdown_it import MarkdownIt
    return MarkdownIt('commonmark', {'html': False}).enable('table').render(
        text)


def _per_image_table(rows: List[dict]) -> str:
    """One row per (dataset, image): its ground-truth facts, then AP /
    AUROC / FPR95 of each scorer; sortable."""
    scorers = list(dict.fromkeys(r['scorer'] for r in rows if r['scorer']))
    images: Dict[Tuple[str, str], dict] = {}
    for r in rows:
        entry = images.setdefault((r['dataset'], r['image']),
                                  dict(facts=r, metrics={}, skipped=''))
        if r['scorer']:
            entry['metrics'][r['scorer']] = r
        if r.get('skipped'):
            entry['skipped'] = r['skipped']
    metric_keys = (('ap', 'AP'), ('auroc', 'AUROC'), ('fpr95', 'FPR95'))
    head = ['<th class="text">dataset</th>', '<th class="text">image</th>',
            '<th>OOD share (%)</th>', '<th>OOD components</th>',
            '<th>OOD pixels</th>']
    head += [f'<th>{_esc(s)} {t}</th>' for s in scorers
             for _, t in metric_keys]
    head.append('<th class="text">skipped</th>')
    lines = ['<div class="scroll"><table class="per-image sortable"><thead>'
             f'<tr>{"".join(head)}</tr></thead><tbody>']

    def number(v, text) -> str:
        value = repr(float(v)) if finite_number(v) else 'NaN'
        return f'<td data-value="{value}">{_esc(text)}</td>'

    for (dataset, image), entry in images.items():
        f = entry['facts']
        cells = [f'<td class="text">{_esc(dataset)}</td>',
                 f'<td class="text" title="{_esc(image)}">'
                 f'{_esc(osp.basename(image))}</td>',
                 number(f.get('ood_share'), percent(f.get('ood_share'))),
                 number(f.get('ood_components'),
                        '' if f.get('ood_components') is None
                        else f['ood_components']),
                 number(f.get('ood_pixels'),
                        '' if f.get('ood_pixels') is None
                        else f['ood_pixels'])]
        for s in scorers:
            m = entry['metrics'].get(s, {})
            cells += [number(m.get(k), percent(m.get(k)) if m else '')
                      for k, _ in metric_keys]
        cells.append(f'<td class="text">{_esc(entry["skipped"])}</td>')
        lines.append(f'<tr>{"".join(cells)}</tr>')
    lines.append('</tbody></table></div>')
    return '\n'.join(lines)


def _page(title: str, body: List[str]) -> str:
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width">'
            f'<title>{_esc(title)}</title><style>{_STYLE}</style></head>'
            '<body>\n' + '\n'.join(body) +
            f'\n<script>{_SORT_SCRIPT}</script>\n</body></html>\n')


def _dataset_figures(work_dir: str, dataset: str) -> str:
    figs = [(osp.join(work_dir, 'curves', f'{dataset}_roc.png'),
             f'ROC curves of all scorers - {dataset}'),
            (osp.join(work_dir, 'curves', f'{dataset}_pr.png'),
             f'precision-recall curves of all scorers - {dataset}'),
            (osp.join(work_dir, 'distributions', f'{dataset}.png'),
             f'ID and OOD score histograms - {dataset}')]
    parts = [_figures(figs)]
    extremes = sorted(glob.glob(osp.join(work_dir, 'extremes',
                                         glob.escape(dataset), '*.png')))
    if extremes:
        parts.append('<h3>Images with the highest and lowest per-image AP'
                     '</h3>')
        parts.append(_figures([(p, _extreme_caption(p)) for p in extremes]))
    return '\n'.join(p for p in parts if p)


def _extreme_caption(path: str) -> str:
    """``highest_1_AP91.20_img.png`` -> ``highest AP 1: img (AP 91.20)``."""
    parts = osp.splitext(osp.basename(path))[0].split('_', 3)
    if len(parts) < 4 or not parts[2].startswith('AP'):
        return osp.basename(path)
    return f'{parts[0]} AP {parts[1]}: {parts[3]} (AP {parts[2][2:]})'


def run_report_html(payload: dict, work_dir: str,
                    per_image_rows: Optional[List[dict]] = None,
                    sections: Optional[Dict[str, str]] = None) -> str:
    """The HTML of one run's report.

    Args:
        payload: The run's ``results.json`` content.
        work_dir: The run's work dir; its ``curves/``, ``distributions/``,
            ``extremes/<dataset>/`` and ``tuning/`` figures are embedded
            where present.
        per_image_rows: The rows of ``per_image.csv`` (with a ``dataset``
            key), or ``None``.
        sections: Title -> Markdown of the run's other sections (as in
            ``results.md``).

    Returns:
        str: The page.

    Raises:
        InvalidValueError: ``payload`` has no ``results``.
    """
    results = payload.get('results')
    if not isinstance(results, dict):
        raise InvalidValueError('the payload has no "results": not the '
                                'content of an ood_test results.json')
    title = f'OOD evaluation - {osp.basename(str(payload.get("config")))}'
    body = [f'<h1>{_esc(title)}</h1>',
            '<nav>' + ''.join(f'<a href="#ds-{i}">{_esc(d)}</a>'
                              for i, d in enumerate(results)) +
            ('<a href="#per-image">per image</a>' if per_image_rows else '')
            + '</nav>',
            '<h2>Settings</h2>', _settings(payload)]
    for i, (dataset, per) in enumerate(results.items()):
        body += [f'<h2 id="ds-{i}">{_esc(dataset)}</h2>',
                 '<p class="note">Percent; bold: the best value of its '
                 'column (lowest FPR95, highest otherwise). Click a header '
                 'to sort.</p>',
                 _results_table(per, dataset),
                 _dataset_figures(work_dir, dataset)]
    miou = payload.get('id_miou') or {}
    if miou:
        body.append('<h2>In-distribution mIoU</h2><table class="miou">' +
                    ''.join(f'<tr><th class="text">{_esc(k)}</th>'
                            f'<td data-value="{v!r}">'
                            f'{"n/a" if v is None else f"{v:.2f}"}</td></tr>'
                            for k, v in miou.items()) + '</table>')
    for name, text in (sections or {}).items():
        if text:
            body += [f'<h2>{_esc(name)}</h2>', _markdown(text)]
    extra = sorted(glob.glob(osp.join(work_dir, 'tuning', '*.png'))) + \
        sorted(glob.glob(osp.join(work_dir, 'curves', 'open_set_miou.png')))
    if extra:
        body += ['<h2>Other figures</h2>',
                 _figures([(p, osp.splitext(osp.basename(p))[0])
                           for p in extra])]
    if per_image_rows:
        body += ['<h2 id="per-image">Per image</h2>',
                 '<p class="note">One row per image; click a header to '
                 'sort (e.g. by a scorer\'s AP to find the images it fails '
                 'on). OOD share: OOD pixels over labelled pixels.</p>',
                 _per_image_table(per_image_rows)]
    return _page(title, body)


def write_run_report(work_dir: str, payload: dict,
                     per_image_rows: Optional[List[dict]] = None,
                     sections: Optional[Dict[str, str]] = None,
                     name: str = 'report.html') -> str:
    """Write :func:`run_report_html` to ``work_dir/name`` atomically.

    Args:
        work_dir: The run's work dir (figures read from it, the page
            written into it).
        payload: The run's ``results.json`` content.
        per_image_rows: The rows of ``per_image.csv``, or ``None``.
        sections: Title -> Markdown of the run's other sections.
        name: The file name.

    Returns:
        str: The file written.
    """
    path = osp.join(work_dir, name)
    atomic_write_text(path, run_report_html(payload, work_dir,
                                            per_image_rows, sections),
                      what='report')
    return path


def comparison_report_html(runs: Dict[str, dict],
                           work_dirs: Dict[str, str],
                           datasets: Sequence[str],
                           scorers: Sequence[str],
                           columns: Sequence[str] = ('auroc', 'ap', 'fpr95')
                           ) -> str:
    """The HTML of several runs side by side.

    Args:
        runs: Run name -> its ``results.json`` content.
        work_dirs: Run name -> its work dir (figures).
        datasets: The datasets compared.
        scorers: The scorers listed, where a run has them.
        columns: Metric keys of the tables.

    Returns:
        str: The page: the runs' settings in columns; per dataset one
        table (rows: run and scorer, best per column over all rows
        marked), then each run's ROC / PR curves side by side.
    """
    title = 'OOD evaluation - ' + ', '.join(runs)
    keys = ('config', 'checkpoint')
    head = ''.join(f'<th class="text">{_esc(n)}</th>' for n in runs)
    settings = [f'<tr><th class="text">setting</th>{head}</tr>']
    for key in keys:
        settings.append(f'<tr><th class="text">{key}</th>' + ''.join(
            f'<td class="text">{_esc(p.get(key))}</td>'
            for p in runs.values()) + '</tr>')
    for key, what in (('commit', 'commit'), ('versions', 'versions')):
        cells = []
        for p in runs.values():
            v = (p.get('run') or {}).get(key)
            if isinstance(v, dict):
                v = ', '.join(f'{a} {b}' for a, b in v.items())
            cells.append(f'<td class="text">{_esc("" if v is None else v)}'
                         '</td>')
        settings.append(f'<tr><th class="text">{what}</th>'
                        + ''.join(cells) + '</tr>')
    settings.append('<tr><th class="text">ID mIoU</th>' + ''.join(
        f'<td data-value="{(p.get("id_miou") or {}).get("test_set")!r}">'
        + _esc('n/a' if (p.get('id_miou') or {}).get('test_set') is None
               else f'{p["id_miou"]["test_set"]:.2f}') + '</td>'
        for p in runs.values()) + '</tr>')
    body = [f'<h1>{_esc(title)}</h1>', '<h2>Runs</h2>',
            '<table class="settings">' + ''.join(settings) + '</table>']
    for dataset in datasets:
        rows = {(run, s): payload['results'][dataset][s]
                for run, payload in runs.items() for s in scorers
                if s in payload['results'].get(dataset, {})}
        best = best_values({f'{r}/{s}': v for (r, s), v in rows.items()},
                           columns)
        th = ''.join(f'<th>{_esc(_TITLES.get(c, c))}</th>' for c in columns)
        lines = [f'<h2>{_esc(dataset)}</h2>',
                 '<p class="note">Percent; bold: the best value of its '
                 'column over all runs.</p>',
                 f'<table class="results sortable" data-dataset='
                 f'"{_esc(dataset)}"><thead><tr><th class="text">run</th>'
                 f'<th class="text">scorer</th>{th}</tr></thead><tbody>']
        for (run, s), row in rows.items():
            attrs = f' data-run="{_esc(run)}" data-scorer="{_esc(s)}"'
            lines.append(f'<tr><td class="text">{_esc(run)}</td>'
                         f'<td class="text">{_esc(s)}</td>' + ''.join(
                             _metric_cell(row, c, best, attrs)
                             for c in columns) + '</tr>')
        lines.append('</tbody></table>')
        body += lines
        for kind, what in (('roc', 'ROC'), ('pr', 'precision-recall')):
            body.append(_figures([
                (osp.join(work_dirs[run], 'curves', f'{dataset}_{kind}.png'),
                 f'{run}: {what} - {dataset}') for run in runs]))
    return _page(title, body)


def write_comparison_report(path: str, runs: Dict[str, dict],
                            work_dirs: Dict[str, str],
                            datasets: Sequence[str],
                            scorers: Sequence[str],
                            columns: Sequence[str] = ('auroc', 'ap',
                                                      'fpr95'),
                            inputs: Iterable[str] = ()) -> str:
    """Write :func:`comparison_report_html` to ``path`` atomically (never
    over one of ``inputs``).

    Args:
        path: The HTML file.
        runs: Run name -> its ``results.json`` content.
        work_dirs: Run name -> its work dir (figures).
        datasets: The datasets compared.
        scorers: The scorers listed, where a run has them.
        columns: Metric keys of the tables.
        inputs: Files ``path`` must not be (the runs' results files).

    Returns:
        str: ``path``.
    """
    atomic_write_text(path, comparison_report_html(
        runs, work_dirs, datasets, scorers, columns), inputs, 'report')
    return path
