"""Mean and spread over training seeds: the same models trained with
several seeds, each evaluated by ``tools/ood_test.py``.

A difference between two models smaller than the spread of either is not
a result. The spread is the sample standard deviation (``ddof=1``) over the
seeds, with the smallest and largest value beside it; with 3 seeds it is a
rough figure, which is why the range is printed too.
"""
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from mmseg_ood.errors import InvalidValueError

from .results import md_cell
from .robustness import parse_cell_key, robustness_schema

#: Pixel metrics a seed table lists, as (key, title).
SEED_COLUMNS = (('auroc', 'AUROC'), ('ap', 'AP'), ('fpr95', 'FPR95'))
#: Every column :func:`seed_table` can show (the component metrics too).
ALL_COLUMNS = SEED_COLUMNS + (('siou', 'sIoU'), ('ppv', 'PPV'),
                              ('mean_f1', 'mean F1'))


def spread(values: Sequence[Optional[float]]) -> dict:
    """``dict(mean, sd, min, max, n, undefined)`` of the defined values
    (None or NaN are undefined metrics: counted, not averaged). ``sd`` is
    ``None`` with fewer than two values.

    Args:
        values: One value per seed (a fraction, or ``None`` / NaN where the
            metric is undefined).

    Returns:
        dict: ``n`` (defined values), ``undefined``, and ``mean``, ``sd``
        (sample standard deviation, ``ddof=1``), ``min``, ``max`` (``None``
        without a defined value).
    """
    defined = [float(v) for v in values
               if v is not None and math.isfinite(float(v))]
    out = dict(n=len(defined), undefined=len(values) - len(defined),
               mean=None, sd=None, min=None, max=None)
    if defined:
        a = np.asarray(defined, dtype=np.float64)
        out.update(mean=float(a.mean()), min=float(a.min()),
                   max=float(a.max()),
                   sd=float(a.std(ddof=1)) if len(a) > 1 else None)
    return out


def format_spread(s: dict, scale: float = 100.0) -> str:
    """``88.74 ± 0.52 (88.20-89.30)``; ``n/a`` when no value is defined.

    Args:
        s: A :func:`spread` dict.
        scale: Factor applied to every number (``100``: fractions shown as
            percent).

    Returns:
        str: ``mean ± sd (min-max)`` with two decimals; the mean alone
        when ``sd`` is ``None`` (one seed).
    """
    if s['mean'] is None:
        return 'n/a'
    if s['sd'] is None:
        return f"{scale * s['mean']:.2f}"
    return (f"{scale * s['mean']:.2f} ± {scale * s['sd']:.2f} "
            f"({scale * s['min']:.2f}-{scale * s['max']:.2f})")


def seed_spreads(runs_per_seed: List[Dict[str, dict]], dataset: str,
                 scorers: Sequence[str],
                 columns: Sequence[str] = tuple(c for c, _ in SEED_COLUMNS)
                 ) -> Dict[str, dict]:
    """Model -> ``{'id_miou': spread, scorer: {column: spread}}`` over the
    seeds.

    Args:
        runs_per_seed: One dict per seed: model name -> the payload of its
            ``results.json``. Every seed must have every model.
        dataset: The OOD dataset.
        scorers: Scorers to summarize. One that no seed of a model has is
            left out for that model (``background`` of a plain head); one
            that some seeds have and others not is an error: the spread
            would silently cover fewer seeds.
        columns: Metric keys.

    Returns:
        dict: Model -> ``{'id_miou': spread, scorer: {column: spread}}``
        (:func:`spread` dicts, mIoU as a fraction).

    Raises:
        InvalidValueError: no seeds, a seed without a model, an incomplete
            run, a run without ``dataset``, or a scorer some seeds lack.
    """
    if not runs_per_seed:
        raise InvalidValueError('no seeds to summarize')
    names = list(runs_per_seed[0])
    out = {}
    for name in names:
        payloads = []
        for i, runs in enumerate(runs_per_seed):
            if name not in runs:
                raise InvalidValueError(f'seed run {i} has no model {name!r}')
            p = runs[name]
            if not p.get('complete', True):
                raise InvalidValueError(
                    f'seed run {i} of {name!r} is incomplete '
                    '(results.partial.json); rerun it')
            if dataset not in p.get('results', {}):
                raise InvalidValueError(
                    f'seed run {i} of {name!r} has no results on '
                    f"{dataset!r}; it has {sorted(p.get('results', {}))}")
            payloads.append(p)
        miou = [(p.get('id_miou') or {}).get('test_set') for p in payloads]
        row = dict(id_miou=spread([None if m is None else m / 100
                                   for m in miou]))
        for s in scorers:
            missing = [i for i, p in enumerate(payloads)
                       if s not in p['results'][dataset]]
            if len(missing) == len(payloads):
                continue  # not a scorer of this model (e.g. background)
            if missing:
                raise InvalidValueError(
                    f'{name!r}: scorer {s!r} missing from seed '
                    f'run(s) {missing}')
            row[s] = {c: spread([p['results'][dataset][s].get(c)
                                 for p in payloads]) for c in columns}
        out[name] = row
    return out


def seed_table(spreads: Dict[str, dict], scorers: Sequence[str],
               columns: Sequence[str] = tuple(c for c, _ in SEED_COLUMNS)
               ) -> str:
    """Markdown: one row per model and scorer, ``mean ± sd (min-max)`` in
    percent, and how many seeds.

    Args:
        spreads: The output of :func:`seed_spreads`.
        scorers: Scorers to list, in this order (where a model has them).
        columns: Metric keys of :data:`ALL_COLUMNS`.

    Returns:
        str: A one-line legend, then the Markdown table.
    """
    titles = dict(ALL_COLUMNS)
    head = ['model', 'seeds', 'ID mIoU', 'scorer'] + \
        [titles.get(c, c) for c in columns]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for name, row in spreads.items():
        n = row['id_miou']['n'] + row['id_miou']['undefined']
        for s in (s for s in scorers if s in row):
            lines.append('| ' + ' | '.join(
                [md_cell(name), str(n), format_spread(row['id_miou']),
                 md_cell(s)] +
                [format_spread(row[s][c]) for c in columns]) + ' |')
    return ('Mean ± sample standard deviation (smallest-largest) over the '
            'seeds, percent.\n\n' + '\n'.join(lines))


#: Per-model quantities of ``robustness.json`` a calibration summary lists:
#: (title, cell selector, key). ``clean``: the clean cell; ``corrupted``:
#: the mean over the corrupted cells.
CALIBRATION_ROWS = (
    ('clean mIoU', 'clean', 'miou'),
    ('clean ECE', 'clean', 'ece'),
    ('clean non-distinctiveness (IBE eq. 4)', 'clean', 'non_distinctiveness'),
    ('corrupted mIoU (mean over cells)', 'corrupted', 'miou'),
    ('corrupted ECE (mean over cells)', 'corrupted', 'ece'),
    ('corrupted non-distinctiveness (mean)', 'corrupted',
     'non_distinctiveness'),
)


def _robustness_value(payload: dict, model: str, where: str, key: str):
    cells = [(parse_cell_key(k), v) for k, v in payload['cells'].items()]
    picked = [v.get(key) for (m, c, s, msc), v in cells
              if m == model and not msc and
              ((c, s) == ('clean', 0)) == (where == 'clean')]
    if not picked or any(v is None for v in picked):
        return None
    return float(np.mean(picked))


def calibration_spreads(payloads: List[dict]) -> Dict[str, Dict[str, dict]]:
    """Model -> row title -> spread over the seeds, from one
    ``robustness.json`` per seed (``tools/robustness_test.py`` with the same
    models, corruptions and severities).

    Args:
        payloads: One loaded ``robustness.json`` per seed; all of one
            schema, with the same models and cells.

    Returns:
        dict: Model -> title of :data:`CALIBRATION_ROWS` -> :func:`spread`.

    Raises:
        InvalidValueError: no payloads, or payloads of other schemas,
            models or cells than the first.
    """
    if not payloads:
        raise InvalidValueError('no seeds to summarize')
    models = payloads[0].get('models', [])
    first = robustness_schema(payloads[0])
    for i, p in enumerate(payloads):
        if robustness_schema(p) != first:
            raise InvalidValueError(f'robustness file {i} has schema '
                                    f'{robustness_schema(p)}, the first '
                                    f'{first}: rerun it')
        if p.get('models') != models or sorted(p['cells']) != \
                sorted(payloads[0]['cells']):
            raise InvalidValueError(
                f'robustness file {i} has other models or '
                'cells than the first: the seeds must run the '
                'same request')
    return {m: {title: spread([_robustness_value(p, m, where, key)
                               for p in payloads])
                for title, where, key in CALIBRATION_ROWS}
            for m in models}


def background_spreads(payloads: Dict[str, List[dict]]
                       ) -> Dict[str, Dict[str, dict]]:
    """Model -> whole-image dataset -> spread of the pooled background IoU
    (``results.json["background_iou"]``, IBE Table 2) over the seeds;
    ``payloads``: model -> one ``results.json`` per seed.

    Args:
        payloads: Model -> one loaded ``results.json`` per seed; the
            datasets are the first seed's.

    Returns:
        dict: Model -> dataset -> :func:`spread` of the pooled background
        IoU as a fraction (undefined where not applicable).

    Raises:
        InvalidValueError: a seed lacks the background IoU of a dataset.
    """
    out = {}
    for model, runs in payloads.items():
        datasets = sorted((runs[0].get('background_iou') or {}))
        out[model] = {}
        for d in datasets:
            values = []
            for r in runs:
                b = (r.get('background_iou') or {}).get(d)
                if b is None:
                    raise InvalidValueError(
                        f'{model!r}: a seed has no background '
                        f'IoU on {d!r}')
                pooled = b.get('pooled')
                values.append(pooled / 100 if b.get('applicable') and
                              pooled is not None else None)
            out[model][d] = spread(values)
    return out


def spread_rows_table(spreads: Dict[str, Dict[str, dict]], title: str,
                      scale: float = 100.0) -> str:
    """Markdown: a row per quantity, a column per model.

    Args:
        spreads: Model -> quantity -> :func:`spread` (the rows are the
            first model's quantities), e.g. :func:`calibration_spreads`.
        title: Header of the first column.
        scale: As in :func:`format_spread`.

    Returns:
        str: The Markdown table.
    """
    models = list(spreads)
    rows = list(spreads[models[0]]) if models else []
    lines = [f'| {title} | ' + ' | '.join(md_cell(m) for m in models) +
             ' |',
             '|' + '---|' * (len(models) + 1)]
    for r in rows:
        lines.append(f'| {md_cell(r)} | ' + ' | '.join(
            format_spread(spreads[m][r], scale) for m in models) + ' |')
    return '\n'.join(lines)
