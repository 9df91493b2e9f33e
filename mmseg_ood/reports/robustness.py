"""Result files of ``tools/robustness_test.py``: SCrIBE's Table 1 (mIoU per
corruption and severity, one block per model), Table 2 (mean over the
corruptions per severity, with and without MSC), calibration and OOD
detection under corruption, Fig. 5 (mIoU against severity) and Fig. 6
(example predictions per corruption).

``robustness.json`` and the resume file ``robustness.partial.json`` carry
``schema_version`` (:data:`ROBUSTNESS_SCHEMA_VERSION`);
:func:`load_robustness_results` and :func:`check_robustness_payload` read
them back with a :class:`~mmseg_ood.errors.DamagedFileError` naming the
file and the field for anything malformed.
"""
from __future__ import annotations

import math
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import DamagedFileError
from ..utils.files import (atomic_write_text, check_output_dir,
                           check_schema_version, dump_json, expect_field,
                           load_json)
from .results import csv_text, md_cell, save_figure

__all__ = [
    'write_robustness_results', 'robustness_summary', 'ROBUSTNESS_SCHEMA',
    'ROBUSTNESS_SCHEMA_VERSION', 'cell_key', 'parse_cell_key',
    'robustness_schema', 'check_robustness_payload',
    'load_robustness_results'
]

#: ``schema_version`` of ``robustness.json`` and
#: ``robustness.partial.json``. It continues the numbering of the files'
#: older ``schema`` field (still written, for older readers): a file
#: without ``schema_version`` (version 0 to
#: :func:`~mmseg_ood.utils.files.check_schema_version`) holds cells of its
#: ``schema`` (1 where absent).
ROBUSTNESS_SCHEMA_VERSION = 2
#: What each schema changed in the cells (a cell of another schema holds
#: other quantities under the same names).
ROBUSTNESS_SCHEMA = {
    2: 'non_distinctiveness is IBE eq. 4 (foreground softmax); schema 1 '
       'held p_BG * max full softmax, now non_distinctiveness_full_softmax'}
_NUMBER = (float, type(None))


def cell_key(model: str, corruption: str, severity: int, msc: bool) -> str:
    """The key of a cell in ``robustness.json["cells"]``:
    ``'<model>|<corruption>|<severity>|ss'`` (``msc`` for multi-scale).

    Args:
        model: The model's name (may itself hold ``|``: keys are split
            from the right).
        corruption: The corruption's name, ``'clean'`` for none.
        severity: 1-5, 0 for the clean cell.
        msc: Multi-scale (and flip) test-time augmentation.

    Returns:
        str: The key.
    """
    return f'{model}|{corruption}|{severity}|{"msc" if msc else "ss"}'


def parse_cell_key(key: str, where: str = 'robustness file'
                   ) -> Tuple[str, str, int, bool]:
    """``(model, corruption, severity, msc)`` of a :func:`cell_key`.

    Args:
        key: A key of ``robustness.json["cells"]``.
        where: The file, as the message names it.

    Returns:
        tuple: ``(model, corruption, severity, msc)``.

    Raises:
        DamagedFileError: ``key`` is not of that form (named, with
            ``where``).
    """
    parts = key.rsplit('|', 3) if isinstance(key, str) else []
    if len(parts) != 4 or parts[3] not in ('ss', 'msc') or \
            not parts[2].isdigit() or not parts[0] or not parts[1]:
        raise DamagedFileError(
            f"{where}: the cell key {key!r} is not 'model|corruption|"
            "severity|ss' (or msc)")
    return parts[0], parts[1], int(parts[2]), parts[3] == 'msc'


def robustness_schema(payload: dict) -> int:
    """The schema of a robustness file's cells: its ``schema_version``, or
    for a file written before that field its ``schema`` (1 where absent).

    Args:
        payload: A loaded ``robustness.json`` / ``robustness.partial.json``.

    Returns:
        int: The schema (a key of :data:`ROBUSTNESS_SCHEMA`, or 1).
    """
    if 'schema_version' in payload:
        return payload['schema_version']
    schema = payload.get('schema', 1)
    return schema if isinstance(schema, int) and \
        not isinstance(schema, bool) else 1


def check_robustness_payload(payload, path: str,
                             what: str = 'robustness results file',
                             complete: bool = True) -> dict:
    """Check the structure of a loaded ``robustness.json`` (or, with
    ``complete=False``, of a ``robustness.partial.json``); return it.

    Checked: the schema version (versions 0 to
    :data:`ROBUSTNESS_SCHEMA_VERSION`), ``settings`` (``corruptions``,
    ``severities``, ``msc``, ``ood_datasets``), every cell's key and its
    numbers (``miou``, ``ece``, ``non_distinctiveness`` and the OOD
    metrics: numbers or ``null``), and for a complete file the ``models``
    (names of strings) and the clean cell of each.

    Args:
        payload: The loaded JSON.
        path: The file it was read from, for messages.
        what: How messages name the file.
        complete: ``True``: a finished ``robustness.json`` (``models`` and
            each model's clean cell required); ``False``: a resume file,
            whose cells may be any subset.

    Returns:
        dict: ``payload``, unchanged.

    Raises:
        DamagedFileError: the first thing that is wrong, naming the file
            and the field.
    """
    check_schema_version(payload, path, what, ROBUSTNESS_SCHEMA_VERSION)
    where = f'{what} {path}'
    settings = expect_field(payload, 'settings', dict, where)
    at = f'{where}: settings'
    for key, kind in (('corruptions', str), ('ood_datasets', str),
                      ('severities', int)):
        values = expect_field(settings, key, list, at)
        if not all(isinstance(v, kind) and not isinstance(v, bool)
                   for v in values):
            raise DamagedFileError(f'{at}: the field {key!r} must be a list '
                                   f'of {kind.__name__}s')
    expect_field(settings, 'msc', bool, at)
    cells = expect_field(payload, 'cells', dict, where)
    for key in cells:
        parse_cell_key(key, where)
        cell = expect_field(cells, key, dict, f'{where}: cells')
        at = f'{where}: cells[{key!r}]'
        for name in ('miou', 'ece'):
            expect_field(cell, name, _NUMBER, at)
        for name in ('non_distinctiveness',
                     'non_distinctiveness_full_softmax'):
            expect_field(cell, name, _NUMBER, at, default=None)
        ood = expect_field(cell, 'ood', dict, at, default={})
        for dataset in ood:
            per = expect_field(ood, dataset, dict, f'{at}.ood')
            for scorer in per:
                metrics = expect_field(per, scorer, dict,
                                       f'{at}.ood.{dataset}')
                for name in ('auroc', 'ap', 'fpr95'):
                    expect_field(metrics, name, _NUMBER,
                                 f'{at}.ood.{dataset}.{scorer}')
    if complete:
        models = expect_field(payload, 'models', list, where)
        if not models or not all(isinstance(m, str) for m in models):
            raise DamagedFileError(f'{where}: the field \'models\' must be '
                                   'a non-empty list of names')
        for m in models:
            if cell_key(m, 'clean', 0, False) not in cells:
                raise DamagedFileError(
                    f'{where}: model {m!r} has no clean cell '
                    f'({cell_key(m, "clean", 0, False)!r})')
    return payload


def load_robustness_results(path: str,
                            what: str = 'robustness results file') -> dict:
    """Read a ``robustness.json`` that ``tools/robustness_test.py`` wrote
    (:func:`check_robustness_payload`).

    Args:
        path: The file.
        what: How messages name it.

    Returns:
        dict: The payload.

    Raises:
        MissingInputError: no such file.
        DamagedFileError: not JSON, a newer schema, incomplete, or a field
            of the wrong type (named).
    """
    payload = check_robustness_payload(load_json(path, what), path, what)
    if not expect_field(payload, 'complete', bool, f'{what} {path}',
                        default=True):
        raise DamagedFileError(f'{what} {path} is marked incomplete: rerun '
                               'tools/robustness_test.py to finish it')
    return payload


def _cell(payload: dict, model: str, corruption: str, severity: int,
          msc: bool) -> Optional[dict]:
    return payload['cells'].get(cell_key(model, corruption, severity, msc))


def _pct(v) -> str:
    return 'n/a' if v is None or (isinstance(v, float) and
                                  not math.isfinite(v)) else f'{100 * v:.2f}'


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float('nan')


def _variants(payload: dict):
    s = payload['settings']
    return [(m, msc) for m in payload['models']
            for msc in ([False, True] if s['msc'] else [False])]


def _label(model: str, msc: bool) -> str:
    return f'{model} + MSC' if msc else model


def _row(cells) -> str:
    return '| ' + ' | '.join(md_cell(c) for c in cells) + ' |'


def robustness_summary(payload: dict) -> Dict[str, dict]:
    """Per model (and ``+ MSC``): mean mIoU / ECE / non-distinctiveness over
    the corruptions at each severity (0: clean), the mean over every
    corrupted cell, and the relative robustness (corrupted / clean).

    Args:
        payload: ``settings``, ``models`` and ``cells`` of a run (missing
            cells and ``None`` values are left out of the means).

    Returns:
        dict: Label (``'<model>'`` or ``'<model> + MSC'``) ->
        ``dict(per_severity={severity: {miou, ece, non_distinctiveness}},
        corrupted_miou, clean_miou, relative_robustness)``; NaN where
        nothing was measured.
    """
    s = payload['settings']
    out = {}
    for model, msc in _variants(payload):
        per = {}
        for sev in [0] + s['severities']:
            corr = ['clean'] if sev == 0 else s['corruptions']
            cells = [_cell(payload, model, c, sev, msc) for c in corr]
            per[sev] = {k: _mean(c.get(k) for c in cells if c)
                        for k in ('miou', 'ece', 'non_distinctiveness')}
        corrupted = _mean(per[sev]['miou'] for sev in s['severities'])
        clean = per[0]['miou']
        out[_label(model, msc)] = dict(
            per_severity=per, corrupted_miou=corrupted, clean_miou=clean,
            relative_robustness=corrupted / clean if clean else float('nan'))
    return out


def _fixed(v, digits: int) -> str:
    return 'n/a' if v is None or not math.isfinite(v) else f'{v:.{digits}f}'


def miou_by_corruption_markdown(payload: dict) -> str:
    """Table 1: mIoU (%) per severity (rows) and corruption (columns), one
    block per model."""
    s = payload['settings']
    head = ['model', 'severity'] + s['corruptions']
    lines = [_row(head), '|' + '---|' * len(head)]
    for model, msc in _variants(payload):
        clean = _cell(payload, model, 'clean', 0, msc) or {}
        lines.append(_row(
            [_label(model, msc), '0 (clean)'] +
            [_pct(clean.get('miou'))] * len(s['corruptions'])))
        for sev in s['severities']:
            row = [_label(model, msc), str(sev)]
            for c in s['corruptions']:
                cell = _cell(payload, model, c, sev, msc)
                row.append(_pct(cell['miou'] if cell else None))
            lines.append(_row(row))
    return '\n'.join(lines)


def miou_by_severity_markdown(summary: Dict[str, dict], severities) -> str:
    """Table 2: mean mIoU (%) over the corruptions per severity, each model
    with and without MSC; the mean corrupted mIoU and the relative
    robustness."""
    names = list(summary)
    head = ['severity'] + names
    lines = [_row(head), '|' + '---|' * len(head)]
    for sev in [0] + list(severities):
        lines.append(_row(
            [f'{sev}{" (clean)" if sev == 0 else ""}'] +
            [_pct(summary[n]['per_severity'][sev]['miou'])
             for n in names]))
    lines.append(_row(
        ['mean corrupted'] + [_pct(summary[n]['corrupted_miou'])
                              for n in names]))
    lines.append(_row(
        ['relative (corrupted / clean)'] +
        [_fixed(summary[n]['relative_robustness'], 3) for n in names]))
    return '\n'.join(lines)


def calibration_markdown(summary: Dict[str, dict], severities) -> str:
    """ECE and expected non-distinctiveness (IBE eq. 4) per severity, mean
    over the corruptions."""
    names = list(summary)
    head = ['severity'] + [f'{n} ECE' for n in names] + [
        f'{n} non-dist.' for n in names]
    lines = [_row(head), '|' + '---|' * len(head)]
    for sev in [0] + list(severities):
        per = [summary[n]['per_severity'][sev] for n in names]
        lines.append(_row(
            [str(sev)] + [_fixed(p['ece'], 4) for p in per] +
            [_fixed(p['non_distinctiveness'], 4) for p in per]))
    return '\n'.join(lines)


def _ap(payload: dict, model: str, corruption: str, severity: int,
        dataset: str, scorer: str):
    cell = _cell(payload, model, corruption, severity, False) or {}
    return ((cell.get('ood') or {}).get(dataset, {}).get(scorer) or
            {}).get('ap')


def ood_markdown(payload: dict) -> str:
    """OOD detection under corruption: AP (%) per scorer and severity, mean
    over the corruptions, per OOD dataset and model."""
    s = payload['settings']
    if not s['ood_datasets']:
        return ''
    blocks = []
    for dataset in s['ood_datasets']:
        head = ['model', 'scorer'] + [f'AP sev {v}'
                                      for v in [0] + s['severities']]
        lines = [f'{md_cell(dataset)}:\n', _row(head),
                 '|' + '---|' * len(head)]
        for model in payload['models']:
            clean = _cell(payload, model, 'clean', 0, False) or {}
            for scorer in (clean.get('ood') or {}).get(dataset, {}):
                row = [model, scorer]
                for sev in [0] + s['severities']:
                    corr = ['clean'] if sev == 0 else s['corruptions']
                    row.append(_pct(_mean(
                        _ap(payload, model, c, sev, dataset, scorer)
                        for c in corr)))
                lines.append(_row(row))
        blocks.append('\n'.join(lines))
    return '\n\n'.join(blocks)


def plot_severity(path: str, summary: Dict[str, dict], severities) -> str:
    """Fig. 5: mean mIoU over the corruptions against severity, a colour per
    model, solid without and dashed with MSC."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    sevs = [0] + list(severities)
    colours: Dict[str, str] = {}
    for name, r in summary.items():
        base = name[:-len(' + MSC')] if name.endswith(' + MSC') else name
        y = [100 * r['per_severity'][v]['miou'] for v in sevs]
        line, = ax.plot(sevs, y, '--' if name != base else '-', marker='o',
                        color=colours.get(base), label=name)
        colours[base] = line.get_color()
    ax.set(xlabel='severity (0: clean)', ylabel='mIoU (%)',
           title='mIoU under corruption (mean over corruptions)')
    ax.set_xticks(sevs)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_examples(path: str, examples: List[dict]) -> Optional[str]:
    """Fig. 6: per corruption (rows), the corrupted input and each model's
    prediction (columns).

    Each panel is 3.2 inches wide (its height follows the image's aspect
    ratio), written at 100 dpi, with 11-point column titles and row
    labels: readable at the size written, without zooming.

    Args:
        path: The image file.
        examples: One dict per row: ``image`` (``(H, W, 3)`` RGB),
            ``corruption``, ``severity``, ``predictions`` (model ->
            ``(H, W)`` class map; the first row's models name the
            columns) and, optionally, ``palette`` (``(R, G, B)`` per
            class; without it the class indices are drawn as they are).

    Returns:
        str or None: ``path``, or ``None`` (nothing written) without
        examples.
    """
    if not examples:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    models = list(examples[0]['predictions'])
    rows, cols = len(examples), 1 + len(models)
    h, w = np.asarray(examples[0]['image']).shape[:2]
    panel_w = 3.2
    panel_h = panel_w * h / max(w, 1)
    fig, axes = plt.subplots(rows, cols, squeeze=False,
                             figsize=(panel_w * cols + 0.6,
                                      (panel_h + 0.35) * rows + 0.5),
                             layout='constrained')
    for r, ex in enumerate(examples):
        axes[r][0].imshow(ex['image'])
        axes[r][0].set_ylabel(f'{ex["corruption"]}\nseverity '
                              f'{ex["severity"]}', fontsize=11)
        palette = np.asarray(ex.get('palette') or [], np.uint8)
        for c, m in enumerate(models, 1):
            pred = ex['predictions'][m]
            shown = palette[np.clip(pred, 0, len(palette) - 1)] if len(
                palette) else pred
            axes[r][c].imshow(shown, interpolation='nearest')
            if r == 0:
                axes[r][c].set_title(m, fontsize=11)
        if r == 0:
            axes[r][0].set_title('input', fontsize=11)
        for a in axes[r]:
            a.set_xticks([])
            a.set_yticks([])
    return save_figure(fig, path, tight=False)


def write_robustness_results(work_dir: str, payload: dict,
                             examples: Optional[List[dict]] = None
                             ) -> Dict[str, str]:
    """Write ``robustness.json`` (with the summary), ``.csv`` (a row per
    cell), ``.md`` (Tables 1-2, calibration, OOD) and the figures.

    Every table is made before any file is written; each file is written
    atomically, ``robustness.json`` (the file that says the run is
    complete, with ``schema_version``) last. A failure leaves no partial
    file under a final name.

    Args:
        work_dir: The folder (created if missing).
        payload: ``settings``, ``models`` and ``cells`` of the run.
        examples: Rows of Fig. 6 (:func:`plot_examples`).

    Returns:
        The paths written: ``json``, ``csv``, ``md``, ``fig5`` (and
        ``fig6``).

    Raises:
        OutputPathError: ``work_dir`` is a file.
    """
    check_output_dir(work_dir, 'work dir')
    s = payload['settings']
    summary = robustness_summary(payload)
    payload = dict(payload, schema_version=ROBUSTNESS_SCHEMA_VERSION,
                   schema=ROBUSTNESS_SCHEMA_VERSION, summary={
                       n: dict(r, per_severity={str(k): v for k, v in
                                                r['per_severity'].items()})
                       for n, r in summary.items()})
    paths = {k: osp.join(work_dir, f'robustness.{k}')
             for k in ('json', 'csv', 'md')}
    rows = []
    for key, cell in payload['cells'].items():
        model, corruption, severity, msc = parse_cell_key(key)
        rows.append(dict(model=model, msc=msc, corruption=corruption,
                         severity=severity, miou=cell['miou'],
                         ece=cell['ece'],
                         non_distinctiveness=cell.get(
                             'non_distinctiveness', '')))
    table = csv_text(rows, ['model', 'msc', 'corruption', 'severity', 'miou',
                            'ece', 'non_distinctiveness'])
    md = ['# Robustness to corrupted input\n',
          'mIoU per corruption and severity (Table 1):\n',
          miou_by_corruption_markdown(payload) + '\n',
          'Mean over the corruptions (Table 2):\n',
          miou_by_severity_markdown(summary, s['severities']) + '\n',
          'Calibration (mean over the corruptions):\n',
          calibration_markdown(summary, s['severities']) + '\n']
    ood = ood_markdown(payload)
    if ood:
        md += ['OOD detection under corruption (AP, mean over the '
               'corruptions):\n', ood + '\n']
    os.makedirs(work_dir, exist_ok=True)
    paths['fig5'] = plot_severity(osp.join(work_dir, 'fig5_severity.png'),
                                  summary, s['severities'])
    fig6 = plot_examples(osp.join(work_dir, 'fig6_examples.png'),
                         examples or [])
    if fig6:
        paths['fig6'] = fig6
    atomic_write_text(paths['csv'], table)
    atomic_write_text(paths['md'], '\n'.join(md))
    dump_json(payload, paths['json'])
    return paths
