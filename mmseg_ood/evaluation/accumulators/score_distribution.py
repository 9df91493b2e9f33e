"""ID and OOD score distributions at a coarse, fixed resolution.

What the distribution figures draw (:mod:`~mmseg_ood.reports.figures`),
and what ``tools/ood_test.py`` saves so that runs can be compared later
(``DIR/distributions/<dataset>.json``): per scorer, ID and OOD pixel counts
in the same ``B`` equal-width bins between the smallest and largest score,
rebinned from the streaming histogram the metric keeps anyway
(:meth:`~mmseg_ood.evaluation.PixelOODAccumulator.counts_by_value`); no
per-pixel array is held. A file of 10 scorers at 256 bins is about 50 KB.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX
from ...utils.files import dump_json, load_json

__all__ = ['ScoreDistribution', 'distributions_of', 'save_distributions',
           'load_distributions', 'DISTRIBUTION_SCHEMA', 'DEFAULT_NUM_BINS']

#: Version of the ``distributions/<dataset>.json`` layout.
DISTRIBUTION_SCHEMA = 1
#: Bins of a saved distribution.
DEFAULT_NUM_BINS = 256
_CLASSES = ('id', 'ood')


@dataclass
class ScoreDistribution:
    """ID and OOD pixel counts of one score in shared equal-width bins.

    Quantiles follow the inverted-CDF definition (numpy's
    ``method='inverted_cdf'``: the smallest score whose cumulative share
    reaches ``q``), interpolated linearly inside the bin that holds it, so
    they lie within one bin width of the exact ones on the raw scores
    (plus, when built from a :class:`~mmseg_ood.evaluation.
    PixelOODAccumulator`, its own bin: about ``2^-11`` of the score's
    magnitude at ``bits=20``).

    Attributes:
        edges: ``(B + 1,)`` ascending bin edges; the last bin is closed.
        id_counts: ``(B,)`` int64 ID pixel counts.
        ood_counts: ``(B,)`` int64 OOD pixel counts.
    """
    edges: np.ndarray
    id_counts: np.ndarray
    ood_counts: np.ndarray

    def __post_init__(self):
        self.edges = np.asarray(self.edges, np.float64)
        self.id_counts = np.asarray(self.id_counts, np.int64)
        self.ood_counts = np.asarray(self.ood_counts, np.int64)
        b = self.edges.size - 1
        if b < 1 or not np.all(np.isfinite(self.edges)) or \
                np.any(np.diff(self.edges) <= 0):
            raise InvalidValueError(
                '`edges` must be at least 2 finite, strictly '
                f'increasing values, got {self.edges!r}')
        for name in ('id_counts', 'ood_counts'):
            c = getattr(self, name)
            if c.shape != (b, ) or (c < 0).any():
                raise InvalidValueError(
                    f'`{name}` must be {b} counts >= 0 (one '
                    f'per bin), got shape {c.shape}')

    # construction ------------------------------------------------------------
    @classmethod
    def from_counts(cls, values, ood_counts, id_counts,
                    num_bins: int = DEFAULT_NUM_BINS) -> 'ScoreDistribution':
        """Rebin pixel counts by score value into ``num_bins`` equal bins
        from the smallest to the largest value (a single value gets one bin
        of width 1 centred on it).

        Args:
            values: ``(V,)`` finite score values.
            ood_counts / id_counts: ``(V,)`` pixels at each value.
            num_bins: ``B >= 1``.
        """
        if not isinstance(num_bins, int) or num_bins < 1:
            raise InvalidValueError(f'`num_bins` must be an int >= 1, got '
                                    f'{num_bins!r}')
        values = np.asarray(values, np.float64)
        ood = np.asarray(ood_counts, np.int64)
        idc = np.asarray(id_counts, np.int64)
        if not values.shape == ood.shape == idc.shape or values.ndim != 1:
            raise InvalidValueError(
                '`values`, `ood_counts` and `id_counts` must be '
                f'1-D of one length, got {values.shape}, '
                f'{ood.shape}, {idc.shape}')
        if not np.all(np.isfinite(values)):
            raise InvalidValueError('`values` must be finite')
        used = (ood + idc) > 0
        values, ood, idc = values[used], ood[used], idc[used]
        if values.size == 0:
            lo = hi = 0.0
        else:
            lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            lo, hi = lo - 0.5, lo + 0.5
        edges = np.linspace(lo, hi, num_bins + 1)
        return cls(edges,
                   np.histogram(values, edges, weights=idc)[0].round(),
                   np.histogram(values, edges, weights=ood)[0].round())

    @classmethod
    def from_scores(cls, scores, labels, num_bins: int = DEFAULT_NUM_BINS,
                    ignore_index: int = IGNORE_INDEX
                    ) -> 'ScoreDistribution':
        """From raw scores and 0 (ID) / 1 (OOD) / ``ignore_index`` labels
        (for small arrays and tests; evaluations rebin their histogram)."""
        s = np.asarray(scores, np.float64).ravel()
        y = np.asarray(labels).ravel()
        keep = (y != ignore_index) & np.isfinite(s)
        s, y = s[keep], y[keep]
        return cls.from_counts(s, (y == 1).astype(np.int64),
                               (y == 0).astype(np.int64), num_bins)

    @classmethod
    def from_streaming(cls, metric, num_bins: int = DEFAULT_NUM_BINS
                       ) -> 'ScoreDistribution':
        """From a :class:`~mmseg_ood.evaluation.PixelOODAccumulator` (its
        bins at their lower edges, refined bins at full resolution).

        Args:
            metric: The accumulator; non-finite scores are left out.
            num_bins: ``B``, the number of equal-width bins.
        """
        values, ood, idc = metric.counts_by_value()
        finite = np.isfinite(values)
        return cls.from_counts(values[finite], ood[finite], idc[finite],
                               num_bins)

    # statistics --------------------------------------------------------------
    def counts(self, which: str) -> np.ndarray:
        """The ``'id'`` or ``'ood'`` counts."""
        if which not in _CLASSES:
            raise InvalidValueError(f'`which` must be one of {_CLASSES}, got '
                                    f'{which!r}')
        return self.id_counts if which == 'id' else self.ood_counts

    def total(self, which: str) -> int:
        """Pixels of the class."""
        return int(self.counts(which).sum())

    @property
    def widths(self) -> np.ndarray:
        """``(B,)`` bin widths."""
        return np.diff(self.edges)

    def density(self, which: str) -> np.ndarray:
        """``(B,)`` probability density of the class (integrates to 1;
        zeros for a class without pixels)."""
        c = self.counts(which).astype(np.float64)
        n = c.sum()
        return c / (n * self.widths) if n else c

    def quantile(self, q, which: str) -> np.ndarray:
        """Quantiles ``q`` (in [0, 1]) of the class's scores (NaN without
        pixels); see the class docstring for the definition."""
        q = np.asarray(q, np.float64)
        if np.any((q < 0) | (q > 1)):
            raise InvalidValueError(f'`q` must be in [0, 1], got {q}')
        c = self.counts(which)
        n = c.sum()
        if n == 0:
            return np.full(q.shape, np.nan)
        cum = np.concatenate([[0], np.cumsum(c)])
        rank = q * n
        # the first bin whose cumulative count reaches the rank (q = 0: the
        # first bin holding a pixel, at its lower edge)
        k = np.searchsorted(cum[1:], np.maximum(rank, 0.5), side='left')
        k = np.minimum(k, c.size - 1)
        frac = (rank - cum[k]) / np.maximum(c[k], 1)
        return self.edges[k] + np.clip(frac, 0, 1) * self.widths[k]

    def mean(self, which: str) -> float:
        """Mean score of the class (bin centres; NaN without pixels)."""
        c = self.counts(which)
        if not c.sum():
            return float('nan')
        centres = (self.edges[:-1] + self.edges[1:]) / 2
        return float((c * centres).sum() / c.sum())

    def best_accuracy_threshold(self) -> Dict[str, float]:
        """The bin edge ``t`` where "OOD if score >= t" classifies the most
        pixels correctly (the red lines of entropy-maximization Fig. 3),
        and that accuracy: ``dict(threshold=t, accuracy=a)`` (NaN without
        pixels). The first of equally good edges."""
        n = self.total('id') + self.total('ood')
        if n == 0:
            return dict(threshold=float('nan'), accuracy=float('nan'))
        # at edge k: the ID pixels of bins < k and OOD pixels of bins >= k
        id_below = np.concatenate([[0], np.cumsum(self.id_counts)])
        ood_at_or_above = self.total('ood') - np.concatenate(
            [[0], np.cumsum(self.ood_counts)])
        correct = id_below + ood_at_or_above
        k = int(np.argmax(correct))
        return dict(threshold=float(self.edges[k]),
                    accuracy=float(correct[k] / n))

    def summary(self, which: str,
                q: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> dict:
        """``n`` and the quantiles ``q`` of the class (for tables)."""
        return dict(n=self.total(which),
                    **{f'q{v:g}': float(x)
                       for v, x in zip(q, self.quantile(q, which))})

    # file format -------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready: ``edges`` and the ``id`` / ``ood`` counts."""
        return dict(edges=self.edges.tolist(), id=self.id_counts.tolist(),
                    ood=self.ood_counts.tolist())

    @classmethod
    def from_dict(cls, data: dict, what: str = 'distribution'
                  ) -> 'ScoreDistribution':
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: naming ``what`` and the field that is malformed.
        """
        if not isinstance(data, dict):
            raise InvalidValueError(
                f'{what}: expected an object with edges, id, '
                f'ood, got {type(data).__name__}')
        missing = [k for k in ('edges', 'id', 'ood') if k not in data]
        if missing:
            raise InvalidValueError(f'{what}: missing {missing}')
        try:
            return cls(data['edges'], data['id'], data['ood'])
        except (ValueError, TypeError) as e:
            raise InvalidValueError(f'{what}: {e}') from None


def save_distributions(path: str, dataset: str,
                       distributions: Dict[str, ScoreDistribution]) -> str:
    """Write ``{scorer: ScoreDistribution}`` of one dataset (atomically,
    with the schema version); return ``path``.

    Args:
        path: The JSON file to write, by convention
            ``DIR/distributions/<dataset>.json``.
        dataset: The dataset's name, stored in the file.
        distributions: ``{scorer name: ScoreDistribution}``.

    Returns:
        str: ``path``.
    """
    dump_json(dict(schema=DISTRIBUTION_SCHEMA, dataset=dataset,
                   scorers={n: d.to_dict()
                            for n, d in distributions.items()}), path)
    return path


def load_distributions(path: str) -> Dict[str, ScoreDistribution]:
    """Read a :func:`save_distributions` file.

    Args:
        path: The JSON file.

    Returns:
        dict: ``{scorer name: ScoreDistribution}``.

    Raises:
        MissingInputError: no such file.
        DamagedFileError: not UTF-8 or not JSON (``load_json``).
        ValueError: another schema, or a malformed entry (naming the file
            and the scorer).
    """
    data = load_json(path, 'distributions file')
    if not isinstance(data, dict) or data.get('schema') != \
            DISTRIBUTION_SCHEMA or not isinstance(data.get('scorers'), dict):
        schema = data.get('schema') if isinstance(data, dict) else None
        raise InvalidValueError(
            f'{path}: expected a distributions file of schema '
            f'{DISTRIBUTION_SCHEMA} with `scorers`, got schema '
            f'{schema!r}')
    return {n: ScoreDistribution.from_dict(d, f'{path}: scorer {n!r}')
            for n, d in data['scorers'].items()}


def distributions_of(pixel_metrics: Dict[str, object],
                     num_bins: int = DEFAULT_NUM_BINS
                     ) -> Dict[str, ScoreDistribution]:
    """``{scorer: ScoreDistribution}`` of an
    :class:`~mmseg_ood.evaluation.OODMetric`'s ``last_pixel``.

    Args:
        pixel_metrics: ``{scorer name: PixelOODAccumulator}``, as
            ``OODMetric.last_pixel`` holds them after an evaluation.
        num_bins: ``B``, the number of equal-width bins between the
            smallest and the largest finite score.

    Returns:
        dict: ``{scorer name: ScoreDistribution}``.
    """
    return {n: ScoreDistribution.from_streaming(m, num_bins)
            for n, m in pixel_metrics.items()}
