"""Result files of ``tools/robustness_test.py``: SCrIBE's Table 1 (mIoU per
corruption and severity, one block per model), Table 2 (mean over the
corruptions per severity, with and without MSC), calibration and OOD
detection under corruption, Fig. 5 (mIoU against severity) and Fig. 6
(example predictions per corruption)."""
from __future__ import annotations

import csv
import math
import os
import os.path as osp
from typing import Dict, List, Optional

import numpy as np

from ..utils.files import atomic_write_text, dump_json
from .results import save_figure

__all__ = ['write_robustness_results', 'robustness_summary']


def _cell(payload: dict, model: str, corruption: str, severity: int,
          msc: bool) -> Optional[dict]:
    return payload['cells'].get(
        f'{model}|{corruption}|{severity}|{"msc" if msc else "ss"}')


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


def robustness_summary(payload: dict) -> Dict[str, dict]:
    """Per model (and ``+ MSC``): mean mIoU / ECE / non-distinctiveness over
    the corruptions at each severity (0: clean), the mean over every
    corrupted cell, and the relative robustness (corrupted / clean)."""
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


def miou_by_corruption_markdown(payload: dict) -> str:
    """Table 1: mIoU (%) per severity (rows) and corruption (columns), one
    block per model."""
    s = payload['settings']
    head = ['model', 'severity'] + s['corruptions']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for model, msc in _variants(payload):
        clean = _cell(payload, model, 'clean', 0, msc)
        lines.append('| ' + ' | '.join(
            [_label(model, msc), '0 (clean)'] +
            [_pct(clean['miou'])] * len(s['corruptions'])) + ' |')
        for sev in s['severities']:
            row = [_label(model, msc), str(sev)]
            for c in s['corruptions']:
                cell = _cell(payload, model, c, sev, msc)
                row.append(_pct(cell['miou'] if cell else None))
            lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def miou_by_severity_markdown(summary: Dict[str, dict], severities) -> str:
    """Table 2: mean mIoU (%) over the corruptions per severity, each model
    with and without MSC; the mean corrupted mIoU and the relative
    robustness."""
    names = list(summary)
    head = ['severity'] + names
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for sev in [0] + list(severities):
        lines.append('| ' + ' | '.join(
            [f'{sev}{" (clean)" if sev == 0 else ""}'] +
            [_pct(summary[n]['per_severity'][sev]['miou'])
             for n in names]) + ' |')
    lines.append('| ' + ' | '.join(
        ['mean corrupted'] + [_pct(summary[n]['corrupted_miou'])
                              for n in names]) + ' |')
    lines.append('| ' + ' | '.join(
        ['relative (corrupted / clean)'] +
        [f'{summary[n]["relative_robustness"]:.3f}' for n in names]) + ' |')
    return '\n'.join(lines)


def calibration_markdown(summary: Dict[str, dict], severities) -> str:
    """ECE and expected non-distinctiveness (IBE eq. 4) per severity, mean
    over the corruptions."""
    names = list(summary)
    head = ['severity'] + [f'{n} ECE' for n in names] + [
        f'{n} non-dist.' for n in names]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for sev in [0] + list(severities):
        per = [summary[n]['per_severity'][sev] for n in names]
        lines.append('| ' + ' | '.join(
            [str(sev)] + [f'{p["ece"]:.4f}' for p in per] +
            [('n/a' if not math.isfinite(p['non_distinctiveness']) else
              f'{p["non_distinctiveness"]:.4f}') for p in per]) + ' |')
    return '\n'.join(lines)


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
        lines = [f'{dataset}:\n', '| ' + ' | '.join(head) + ' |',
                 '|' + '---|' * len(head)]
        for model in payload['models']:
            clean = _cell(payload, model, 'clean', 0, False)
            for scorer in clean['ood'][dataset]:
                row = [model, scorer]
                for sev in [0] + s['severities']:
                    corr = ['clean'] if sev == 0 else s['corruptions']
                    row.append(_pct(_mean(
                        _cell(payload, model, c, sev, False)['ood'][
                            dataset][scorer]['ap'] for c in corr)))
                lines.append('| ' + ' | '.join(row) + ' |')
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
    prediction (columns)."""
    if not examples:
        return None
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    models = list(examples[0]['predictions'])
    rows, cols = len(examples), 1 + len(models)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 1.6 * rows),
                             squeeze=False)
    for r, ex in enumerate(examples):
        axes[r][0].imshow(ex['image'])
        axes[r][0].set_ylabel(f'{ex["corruption"]}@{ex["severity"]}',
                              fontsize=7)
        palette = np.asarray(ex.get('palette') or [], np.uint8)
        for c, m in enumerate(models, 1):
            pred = ex['predictions'][m]
            shown = palette[np.clip(pred, 0, len(palette) - 1)] if len(
                palette) else pred
            axes[r][c].imshow(shown)
            if r == 0:
                axes[r][c].set_title(m, fontsize=8)
        if r == 0:
            axes[r][0].set_title('input', fontsize=8)
        for a in axes[r]:
            a.set_xticks([])
            a.set_yticks([])
    return save_figure(fig, path)


def write_robustness_results(work_dir: str, payload: dict,
                             examples: Optional[List[dict]] = None
                             ) -> Dict[str, str]:
    """Write ``robustness.json`` (with the summary), ``.csv`` (a row per
    cell), ``.md`` (Tables 1-2, calibration, OOD) and the figures, each
    complete under its name."""
    os.makedirs(work_dir, exist_ok=True)
    s = payload['settings']
    summary = robustness_summary(payload)
    payload = dict(payload, summary={
        n: dict(r, per_severity={str(k): v for k, v in
                                 r['per_severity'].items()})
        for n, r in summary.items()})
    paths = {k: osp.join(work_dir, f'robustness.{k}')
             for k in ('json', 'csv', 'md')}
    dump_json(payload, paths['json'])
    with open(paths['csv'] + '.tmp', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['model', 'msc', 'corruption', 'severity', 'miou', 'ece',
                    'non_distinctiveness'])
        for key, cell in payload['cells'].items():
            model, corruption, severity, mode = key.split('|')
            w.writerow([model, mode == 'msc', corruption, severity,
                        cell['miou'], cell['ece'],
                        cell.get('non_distinctiveness', '')])
    os.replace(paths['csv'] + '.tmp', paths['csv'])
    paths['fig5'] = plot_severity(osp.join(work_dir, 'fig5_severity.png'),
                                  summary, s['severities'])
    fig6 = plot_examples(osp.join(work_dir, 'fig6_examples.png'),
                         examples or [])
    if fig6:
        paths['fig6'] = fig6
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
    atomic_write_text(paths['md'], '\n'.join(md))
    return paths
