"""The grid of ``ood_test --tune``: norm-decoupled scorers over eta, delta
and the temperature, all scored from one forward pass per image."""
from __future__ import annotations

import itertools
from typing import Dict, List, Optional, Sequence

__all__ = ['TUNE_GRID', 'tuning_scorers', 'restrict_grid', 'tunable_types',
           'best_of_grid']

#: Values tried for each tunable parameter.
TUNE_GRID = dict(eta=(0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
                 delta=(0.0, 0.25, 0.5, 0.75, 1.0),
                 temperature=(0.5, 1.0, 2.0, 5.0))
#: The scorers' defaults (a parameter not tuned stays at its default).
DEFAULTS = dict(eta=1.0, delta=0.0, temperature=1.0)


def check_tuned(tune: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``tune`` names tunable parameters, each
    once."""
    unknown = [t for t in tune if t not in TUNE_GRID]
    if unknown:
        raise ValueError(f'`tune` takes {sorted(TUNE_GRID)}, got {unknown}')
    twice = sorted({t for t in tune if list(tune).count(t) > 1})
    if twice:
        raise ValueError(f'`tune` names {twice} more than once')


def tuning_scorers() -> Dict[str, dict]:
    """The full grid: ``n_energy`` over (eta, delta, T), ``n_max_logit``
    over (eta, delta), ``energy`` over T; point name -> scorer config."""
    grid = {}
    for eta, delta, t in itertools.product(TUNE_GRID['eta'],
                                           TUNE_GRID['delta'],
                                           TUNE_GRID['temperature']):
        grid[f'n_energy[eta={eta:g},delta={delta:g},T={t:g}]'] = dict(
            type='n_energy', eta=eta, delta=delta, temperature=t)
    for eta, delta in itertools.product(TUNE_GRID['eta'], TUNE_GRID['delta']):
        grid[f'n_max_logit[eta={eta:g},delta={delta:g}]'] = dict(
            type='n_max_logit', eta=eta, delta=delta)
    for t in TUNE_GRID['temperature']:
        grid[f'energy[T={t:g}]'] = dict(type='energy', temperature=t)
    return grid


def restrict_grid(grid: Dict[str, dict], tune: Sequence[str],
                  types: Optional[Sequence[str]] = None) -> dict:
    """Keep the grid points that vary only the parameters in ``tune`` (the
    others at their defaults: eta 1, delta 0, temperature 1), of the scorer
    ``types`` if given (``None``: all)."""
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
    """The scorer types with a grid over any parameter of ``tune``."""
    return sorted({cfg['type'] for cfg in restrict_grid(tuning_scorers(),
                                                        tune).values()})


def best_of_grid(results: Dict[str, dict], grid: Dict[str, dict]) -> dict:
    """Per scorer type, the grid point with the highest AP (NaN skipped):
    ``{type: dict(point=name, ap=value, params=scorer config)}``."""
    best = {}
    for name, cfg in grid.items():
        ap = results.get(name, {}).get('ap', float('nan'))
        cur = best.get(cfg['type'])
        if ap == ap and (cur is None or ap > cur[1]):
            best[cfg['type']] = (name, ap)
    return {t: dict(point=n, ap=ap, params=grid[n])
            for t, (n, ap) in best.items()}
