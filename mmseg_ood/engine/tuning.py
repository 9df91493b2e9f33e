"""The grid of ``ood_test --tune``: norm-decoupled scorers over eta, delta
and the temperature, all scored from one forward pass per image.

Each tuned parameter takes the default values of :data:`TUNE_GRID` or a
list of its own (``--tune temperature=0.01,0.1,1 eta``, parsed by
:func:`tune_values`)."""
from __future__ import annotations

import itertools
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from mmseg_ood.errors import InvalidValueError

__all__ = ['TUNE_GRID', 'tuning_scorers', 'restrict_grid', 'tunable_types',
           'best_of_grid', 'tune_values', 'TuneSpec']

#: Values tried for each tunable parameter.
TUNE_GRID = dict(eta=(0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
                 delta=(0.0, 0.25, 0.5, 0.75, 1.0),
                 temperature=(0.5, 1.0, 2.0, 5.0))
#: The scorers' defaults (a parameter not tuned stays at its default).
DEFAULTS = dict(eta=1.0, delta=0.0, temperature=1.0)


#: What ``tune`` may be, items ``'eta'`` (the default grid) or
#: ``'eta=0,0.5,1'``, or a mapping ``{'eta': (0, 0.5, 1) or None}``.
TuneSpec = Union[Sequence[str], Mapping[str, Optional[Sequence[float]]]]


def check_tuned(tune: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``tune`` names tunable parameters, each
    once."""
    unknown = [t for t in tune if t not in TUNE_GRID]
    if unknown:
        raise InvalidValueError(
            f'`tune` takes {sorted(TUNE_GRID)}, got {unknown}')
    twice = sorted({t for t in tune if list(tune).count(t) > 1})
    if twice:
        raise InvalidValueError(f'`tune` names {twice} more than once')


def _number(param: str, text) -> float:
    """One grid value of ``param``, checked against its range (eta: any
    finite number; delta: [0, 1], thesis eq. 5.7; temperature: > 0, eq.
    4.20)."""
    if isinstance(text, bool):
        raise InvalidValueError(f'`tune` {param}: {text!r} is not a number')
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise InvalidValueError(f'`tune` {param}: {text!r} is not a number') \
                   from None
    if not math.isfinite(v):
        raise InvalidValueError(f'`tune` {param}: values must be finite, got '
                                f'{text!r}')
    if param == 'temperature' and v <= 0:
        raise InvalidValueError(
            f'`tune` temperature must be > 0, got {text!r}')
    if param == 'delta' and not 0.0 <= v <= 1.0:
        raise InvalidValueError(
            f'`tune` delta must be in [0, 1], got {text!r}')
    return v


def _values(param: str, given) -> Tuple[float, ...]:
    """The grid of ``param``: ``None`` -> :data:`TUNE_GRID`'s; a string
    ``'0,0.5,1'`` (or ``'[0,0.5,1]'``, as mmengine's ``--cfg-options``
    writes lists), a number or a sequence of numbers -> those values."""
    if given is None:
        return tuple(TUNE_GRID[param])
    if isinstance(given, str):
        text = given.strip()
        if len(text) >= 2 and text[0] + text[-1] in ('[]', '()'):
            text = text[1:-1]
        items = [t.strip() for t in text.split(',')]
        if all(not t for t in items):
            example = ','.join(f'{v:g}' for v in TUNE_GRID[param][:3])
            raise InvalidValueError(
                f'`tune` {param}= lists no values: give e.g. '
                f'{param}={example}')
        if not all(items):
            raise InvalidValueError(f'`tune` {param}={given}: an empty value '
                                    '(two commas, or one at an end)')
    elif isinstance(given, (int, float)):
        items = [given]
    else:
        items = list(given)
        if not items:
            raise InvalidValueError(
                f'`tune` {param}: the list of values is empty')
    values = [_number(param, t) for t in items]
    seen = {}
    for v in values:  # grid points are named with `:g`
        if f'{v:g}' in seen:
            raise InvalidValueError(
                f'`tune` {param} lists {v:g} twice'
                + ('' if seen[f'{v:g}'] == v else
                   f' ({seen[f"{v:g}"]!r} and {v!r} are the '
                   'same to 6 significant digits)'))
        seen[f'{v:g}'] = v
    return tuple(values)


def tune_values(tune: TuneSpec) -> Dict[str, Tuple[float, ...]]:
    """``tune`` as ``{parameter: grid values}``, in the order named.

    Args:
        tune: Items ``'eta'`` (the parameter's :data:`TUNE_GRID` values) or
            ``'eta=0,0.5,1'`` (``--tune`` on the command line; also
            ``'eta=[0,0.5,1]'``), or a mapping ``{'eta': values or None}``.

    Raises:
        ValueError: an unknown parameter, one named twice, an empty list,
            a value that is not a finite number or out of range
            (``temperature <= 0``, ``delta`` outside [0, 1]), or a value
            listed twice; the message names the parameter and the value.
    """
    if isinstance(tune, str):
        tune = [tune]
    if isinstance(tune, Mapping):
        pairs = [(str(k), v) for k, v in tune.items()]
    else:
        pairs = []
        for item in tune:
            if not isinstance(item, str):
                raise InvalidValueError(
                    f'`tune` items must be strings such as '
                    f"'eta' or 'temperature=0.1,1', got "
                    f'{item!r}')
            name, sep, rest = item.partition('=')
            pairs.append((name.strip(), rest if sep else None))
    check_tuned([name for name, _ in pairs])
    return {name: _values(name, given) for name, given in pairs}


def tuning_scorers(values: Optional[Mapping[str, Sequence[float]]] = None
                   ) -> Dict[str, dict]:
    """The full grid: ``n_energy`` over (eta, delta, T), ``n_max_logit``
    over (eta, delta), ``energy`` over T; point name -> scorer config.

    Args:
        values: Grid values of some parameters (:func:`tune_values`); the
            others take :data:`TUNE_GRID`'s.
    """
    v = {**TUNE_GRID, **(values or {})}
    grid = {}
    for eta, delta, t in itertools.product(v['eta'], v['delta'],
                                           v['temperature']):
        grid[f'n_energy[eta={eta:g},delta={delta:g},T={t:g}]'] = dict(
            type='n_energy', eta=eta, delta=delta, temperature=t)
    for eta, delta in itertools.product(v['eta'], v['delta']):
        grid[f'n_max_logit[eta={eta:g},delta={delta:g}]'] = dict(
            type='n_max_logit', eta=eta, delta=delta)
    for t in v['temperature']:
        grid[f'energy[T={t:g}]'] = dict(type='energy', temperature=t)
    return grid


def restrict_grid(grid: Dict[str, dict], tune: Sequence[str],
                  types: Optional[Sequence[str]] = None) -> dict:
    """Keep the grid points that vary only the parameters in ``tune`` (the
    others at their defaults: eta 1, delta 0, temperature 1), of the scorer
    ``types`` if given (``None``: all).

    Args:
        grid: Point name -> scorer config, as :func:`tuning_scorers`
            returns it.
        tune: The tuned parameters (``'eta'``, ``'delta'``,
            ``'temperature'``); a point that also varies another one is
            dropped, as is a scorer type with none of them.
        types: Scorer types kept (e.g. ``['n_energy']``); ``None``: all.

    Returns:
        dict: The kept points, in ``grid``'s order.
    """
    out = {}
    for name, cfg in grid.items():
        if not any(p in cfg for p in tune):
            continue  # this scorer has none of the tuned parameters
        if types is not None and cfg['type'] not in types:
            continue
        if all(cfg.get(p, DEFAULTS[p]) == DEFAULTS[p]
               for p in DEFAULTS if p not in tune):
            out[name] = cfg
    return out


def tunable_types(tune: Sequence[str]) -> List[str]:
    """The scorer types with a grid over any parameter of ``tune``.

    Args:
        tune: Tuned parameter names (``'eta'``, ``'delta'``,
            ``'temperature'``).

    Returns:
        list: Sorted scorer type names, e.g. ``['energy', 'n_energy']`` for
        ``['temperature']``.
    """
    return sorted({cfg['type'] for cfg in restrict_grid(tuning_scorers(),
                                                        tune).values()})


def best_of_grid(results: Dict[str, dict], grid: Dict[str, dict]) -> dict:
    """Per scorer type, the grid point with the highest AP (NaN skipped):
    ``{type: dict(point=name, ap=value, params=scorer config)}``.

    Args:
        results: The ``OODMetric`` results by point name; each point's
            ``'ap'`` (average precision, percent) is read, a missing point
            counts as NaN.
        grid: Point name -> scorer config (its ``type`` groups the points).

    Returns:
        dict: One entry per scorer type with at least one non-NaN AP; ties
        go to the first point in ``grid``'s order.
    """
    best = {}
    for name, cfg in grid.items():
        ap = results.get(name, {}).get('ap', float('nan'))
        cur = best.get(cfg['type'])
        if ap == ap and (cur is None or ap > cur[1]):
            best[cfg['type']] = (name, ap)
    return {t: dict(point=n, ap=ap, params=grid[n])
            for t, (n, ap) in best.items()}
