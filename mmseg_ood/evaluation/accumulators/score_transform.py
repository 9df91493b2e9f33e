"""A monotone map of OOD scores onto the float16 values in [0, 1].

The Segment-Me-If-You-Can benchmark stores submissions as float16. Cast
directly, scores lose their ranking: float16 has 10 mantissa bits, so a
scorer whose values lie in a narrow range (a normalized energy between
-1.02 and -1.00) or far from 1 (an energy of -40) keeps a few hundred
distinct values, and the metrics computed from the files are worse than
those of the scores themselves.

:class:`Float16RankTransform` spends the 15361 float16 values of [0, 1]
(0, the 1023 subnormals, 14 binades of 1024 normals, and 1) on shares of
a dataset's pixels: its knots ``t_1 < ... < t_K`` (``K <= 15360``) are
chosen from the dataset's score distribution (:func:`float16_knots`):
half of the values on equal shares of the pixels, half on equal steps of
``log(1 - F)``, ``F`` the fraction of pixels below, i.e. ever finer
towards the highest scores, where AP and the 95 %-TPR threshold are
decided. A score ``s`` becomes

    ``c(s) = #{k : t_k <= s}``  (0 to K),
    ``value(s) = G[round(c(s) * 15360 / K)]``,

with ``G`` the float16 values of [0, 1] in increasing order. ``value`` is
non-decreasing in ``s`` (higher = more anomalous, as the benchmark reads
it), the same function for every frame of the dataset (frames are
comparable), and two scores get the same value only if no knot lies
between them. With fewer distinct scores than float16 values, every
distinct score is a knot and the ranking is kept exactly; otherwise the
pixels that share a value are at most about ``2 N / 15361`` of the
dataset, and far fewer among the highest scores (one distinct score may
hold more: ties stay ties). On the demo model, the upper-tail half cut the
largest AP difference between the files and the tool from 4.6e-4 (equal
shares only) to under 1e-4 (``benchmarks/smiyc_export_fidelity.py``).
``+inf`` maps to 1, ``-inf`` to 0.

The knots come from a :class:`~mmseg_ood.evaluation.PixelOODAccumulator`
histogram of the scores (the same binning as the pixel metrics: scores in
one ``2^-11``-relative bin are one value to both), so fitting streams in
bounded memory. The transform is written as JSON (:meth:`to_dict`) next to
the exported files.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from ...errors import InvalidValueError
from ..functional.float_keys import order_keys
from .pixel import PixelOODAccumulator

__all__ = ['Float16RankTransform', 'FLOAT16_UNIT_VALUES']

#: The float16 values in [0, 1], increasing (bit patterns 0 to 0x3C00).
FLOAT16_UNIT_VALUES = np.arange(0x3C01, dtype=np.uint16).view(np.float16)
_CODES = FLOAT16_UNIT_VALUES.size  # 15361
#: Order-key bits of the lookup table that applies the transform.
_LUT_BITS = 20
_LUT_SHIFT = np.uint32(32 - _LUT_BITS)
_LOW_MASK = np.uint32((1 << (32 - _LUT_BITS)) - 1)
#: Most bins with a sub-table (8 KiB each); beyond, their pixels are
#: searched.
_MAX_SUB = 2048
VERSION = 1


def float16_knots(values: np.ndarray, counts: np.ndarray,
                  codes: int = _CODES, tail_share: float = 0.5
                  ) -> np.ndarray:
    """Knots that split ``counts`` at ``values`` into at most ``codes``
    groups, never splitting a value.

    Value ``i`` with a fraction ``u_i`` of the pixels below it goes to group
    ``floor(codes * ((1 - w) u_i + w psi(u_i)))``, ``w = tail_share``,
    ``psi(u) = log((1 + d) / (1 - u + d)) / log((1 + d) / d)``, ``d = 1 /
    N``: equal shares of the pixels, mixed with equal steps of the log of
    the fraction above (fine among the highest scores). Every group then
    holds at most ``N / (codes (1 - w))`` pixels unless one value holds
    more.

    Args:
        values: ``(V,)`` ascending distinct values.
        counts: ``(V,)`` pixel counts.
        codes: Number of groups at most.
        tail_share: ``w`` in [0, 1).

    Returns:
        float32 ``(K,)`` strictly increasing knots, ``K < codes``: value
        ``i`` is in group ``#{knots <= values[i]}``.
    """
    values = np.asarray(values, np.float32)
    counts = np.asarray(counts, np.float64)
    keep = counts > 0
    values, counts = values[keep], counts[keep]
    if values.size <= 1:
        return np.zeros(0, np.float32)
    if values.size <= codes:
        return values[1:].copy()  # every distinct value its own group
    total = counts.sum()
    u = (np.cumsum(counts) - counts) / total  # fraction below each value
    d = 1.0 / total
    psi = np.log((1 + d) / (1 - u + d)) / np.log((1 + d) / d)
    group = np.floor(codes * ((1 - tail_share) * u + tail_share * psi))
    starts = np.flatnonzero(np.diff(group) > 0) + 1
    return values[starts].copy()


class Float16RankTransform:
    """Scores -> float16 in [0, 1], ranking kept (see the module docstring
    for the definition).

    Args:
        knots: Strictly increasing float32 knots (at most 15360).

    Example:
        >>> hist = PixelOODAccumulator()
        >>> for m in score_maps:
        ...     Float16RankTransform.observe(hist, m)
        >>> t = Float16RankTransform.fit(hist)
        >>> value = t(score_map)          # float16, same shape
    """

    def __init__(self, knots):
        knots = np.asarray(knots, np.float32).reshape(-1)
        if knots.size >= _CODES:
            raise InvalidValueError(
                f'at most {_CODES - 1} knots, got {knots.size}')
        if not np.isfinite(knots).all():
            raise InvalidValueError('knots must be finite')
        if knots.size > 1 and not (np.diff(knots) > 0).all():
            raise InvalidValueError('knots must be strictly increasing')
        self.knots = knots
        k = max(knots.size, 1)
        #: Index into FLOAT16_UNIT_VALUES of each code 0 to K.
        self.code_index = np.rint(np.arange(knots.size + 1) *
                                  ((_CODES - 1) / k)).astype(np.intp)
        self.code_values = FLOAT16_UNIT_VALUES[self.code_index]
        self._lut = None

    # fitting -----------------------------------------------------------------
    @staticmethod
    def observe(histogram: PixelOODAccumulator, scores) -> None:
        """Add a score map's finite values to ``histogram`` (labels are not
        needed: every pixel counts, void and unlabelled ones too)."""
        s = np.asarray(scores, np.float32).reshape(-1)
        finite = np.isfinite(s)
        if not finite.all():
            s = s[finite]
        histogram.update_valid(s, np.zeros(s.size, np.uint8))

    @classmethod
    def fit(cls, histogram: PixelOODAccumulator) -> 'Float16RankTransform':
        """The transform of the scores counted in ``histogram``.

        A refined bin's coarse pixels (of the images where it was not
        heavy) are known only to lie in the bin; the bin's lower edge is
        then a knot too, so that they never tie with a lower bin's pixels.
        """
        values, pos, neg = histogram.counts_by_value()
        edges = histogram.refined_edges()
        knots = float16_knots(values, pos + neg, _CODES - edges.size)
        return cls(np.union1d(knots, edges).astype(np.float32))

    # applying ----------------------------------------------------------------
    def codes(self, scores) -> np.ndarray:
        """``c(s)``, the number of knots ``<= s`` (int array, same shape).
        NaN scores are an error for the caller to raise first."""
        s = np.asarray(scores, np.float32)
        if self.knots.size == 0:
            return np.zeros(s.shape, np.intp)
        base, table, sub_of, sub = self._table()
        key = order_keys(s.reshape(-1))
        rel = np.clip((key >> _LUT_SHIFT).astype(np.int64) - base, -1,
                      table.size - 2) + 1
        c = table[rel].astype(np.intp)
        # bins with a knot inside (not at their lower edge): their
        # sub-table, by the key's low bits (or an exact search)
        j = sub_of[rel]
        odd = j >= 0
        if odd.any():
            if sub is None:
                c[odd] = np.searchsorted(self.knots, s.reshape(-1)[odd],
                                         side='right')
            else:
                c[odd] = sub[j[odd], key[odd] & _LOW_MASK]
        return c.reshape(s.shape)

    def __call__(self, scores) -> np.ndarray:
        """The float16 values of ``scores`` (same shape)."""
        return self.code_values[self.codes(scores)]

    def _table(self):
        """The lookup tables, built on first use.

        ``(base, table, sub_of, sub)``: for the order-key bins (at
        ``_LUT_BITS`` bits, at most 2^20 bins: up to 6 MiB) from ``base`` over
        the knots' span, ``table`` holds the code of each bin (entry 0 stands
        for every bin below, the last for every bin above); a bin with a knot
        strictly inside (not at its lower edge) has ``sub_of >= 0``, its row of
        ``sub``: the code of each of the bin's ``2^12`` exact values (``None``
        with more than ``_MAX_SUB`` such bins: then searched).
        """
        if self._lut is not None:
            return self._lut
        keys = order_keys(self.knots)
        bins = (keys >> _LUT_SHIFT).astype(np.int64)
        base, top = int(bins[0]), int(bins[-1])
        span = top - base + 1
        # code of a bin = knots at or below its lower edge, i.e. knots in
        # earlier bins plus the knots exactly at its edge
        low = (keys & _LOW_MASK).astype(np.int64)
        edge = low == 0
        below = np.zeros(span + 1, np.int64)
        np.add.at(below, bins - base + 1, 1)
        at_edge = np.zeros(span, np.int64)
        np.add.at(at_edge, (bins - base)[edge], 1)
        before = np.cumsum(below)[:-1]  # knots in earlier bins
        table = np.r_[0, before + at_edge, self.knots.size].astype(np.uint16)
        odd = np.unique(bins[~edge])
        sub_of = np.full(span + 2, -1, np.int32)
        sub_of[odd - base + 1] = np.arange(odd.size)
        sub = None
        if odd.size <= _MAX_SUB:
            sub = np.empty((odd.size, _LOW_MASK + 1), np.uint16)
            values = np.arange(_LOW_MASK + 1)
            for i, b in enumerate(odd.tolist()):
                lows = low[bins == b]  # ascending: knots are sorted
                sub[i] = before[b - base] + np.searchsorted(
                    lows, values, side='right')
        self._lut = (base, table, sub_of, sub)
        return self._lut

    # files -------------------------------------------------------------------
    def to_dict(self, **info) -> Dict:
        """A JSON-friendly description: the definition, the knots (float32
        values written exactly as decimal float64) and ``info``."""
        return dict(
            format='mmseg_ood.Float16RankTransform', version=VERSION,
            definition=('value(s) = G[round(c(s) * 15360 / K)], c(s) = '
                        '#{k : knots[k] <= s}, K = len(knots) (1 if 0), G = '
                        'the 15361 float16 values in [0, 1] ascending '
                        '(bit patterns 0x0000..0x3C00); +inf -> 1, -inf '
                        '-> 0'),
            num_knots=int(self.knots.size),
            knots=[float(k) for k in self.knots], **info)

    @classmethod
    def from_dict(cls, data: Dict, source: Optional[str] = None
                  ) -> 'Float16RankTransform':
        """The transform :meth:`to_dict` described (``source``: a file
        name for messages)."""
        where = f'{source}: ' if source else ''
        if not isinstance(data, dict) or data.get(
                'format') != 'mmseg_ood.Float16RankTransform':
            raise InvalidValueError(f'{where}not a Float16RankTransform file')
        if data.get('version') != VERSION:
            raise InvalidValueError(
                f'{where}version {data.get("version")!r}; this '
                f'package reads version {VERSION}')
        try:
            return cls(np.asarray(data['knots'], np.float64))
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidValueError(f'{where}bad `knots`: {e}') from e
