"""Choose an OOD decision threshold and measure the rates it achieves.

A deployment needs one threshold per scorer (OOD when ``score >=
threshold``) at an operating point it can defend:

- ``'id_fpr'``: at most a fraction ``alpha`` of ID pixels flagged, from ID
  data alone (no OOD labels). With ``N`` ID pixels, ``K = max{k : k / N
  <= alpha}`` (:func:`count_at_most`); the threshold is the smallest ID
  score above ``w``, the ``K + 1``-th largest ID score. It flags ``K`` ID
  pixels (fewer under ties), the most that stay within ``alpha``, and no
  other threshold value flags that many. ``w`` is ``np.quantile(s, 1 -
  alpha, method='inverted_cdf')``, except where ``(1 - alpha) N`` is
  within float rounding of an integer: numpy's ``1 - alpha`` can then
  land one pixel higher (e.g. ``alpha = 0.7``, ``N = 10``: ``(1 - 0.7) *
  10 = 3.0000000000000004``, numpy flags 6 pixels where 7 are allowed).
- ``'tpr'``: the largest threshold whose pixel TPR on a labelled OOD set
  reaches ``rate`` (an OOD score, exact).
- ``'best_f1'``: the best pixel-F1 threshold on a labelled OOD set (over
  the histogram's bin edges: 2^-11 relative resolution at ``bits=20``).

**Exact from a stream.** The scores stream into a
:class:`~mmseg_ood.evaluation.PixelOODAccumulator` (bounded memory) and
each rank spills its maps to disk (:class:`~mmseg_ood.formats.
score_map_spill.ScoreMapSpill`). The histogram's bin counts are exact, so
it tells which bin holds ``w`` (and which holds the next score up); one
read-back of the spilled maps then counts the pixels of just those bins at
full float32 resolution (a bin holds ``2^(32 - bits)`` float32 values), and
the threshold is found exactly. Merged across ranks, so it is the same on
any number of processes.

**Achieved rates and their interval.** A second read-back counts, per
image, the ID and OOD pixels at or above the threshold. The rates are
pooled (``sum k_i / sum n_i``); their confidence interval treats images as
the sampled units (pixels of one image are strongly correlated, so a
binomial interval over pixels would be far too narrow): the ratio
estimator's delta-method variance ``m / (m - 1) sum (k_i - p n_i)^2 /
(sum n_i)^2`` over the ``m`` images with pixels of that class, and a
normal interval, clipped to [0, 1] (Cochran, "Sampling Techniques", 3rd
ed., 1977, Sec. 6.4 and 11.8).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import numpy as np
from mmseg.registry import METRICS

from ...errors import InvalidValueError, MissingFieldError
from ...formats.threshold_file import RULES, check_rate
from ...labels import IGNORE_INDEX
from ...utils.arguments import strict_arguments
from ..accumulators.base import Accumulator, merge_across_ranks
from ..accumulators.pixel import PixelOODAccumulator
from ..functional.float_keys import keys_to_values, order_keys
from ..functional.inputs import (VOID, check_finite, flat_ood_labels,
                                sample_ood_labels, to_numpy)
from .accumulating_metric import AccumulatingMetric

__all__ = ['OperatingPointMetric', 'BinValueCounts', 'rate_interval',
           'count_at_most', 'count_at_least', 'OPERATING_RULES', 'ImageRates',
           'describe_rule', 'threshold_summary']

#: What a threshold can be chosen by (the calibration file's rules).
OPERATING_RULES = RULES
_ID, _OOD = 0, 1


def count_at_most(rate: float, n: int) -> int:
    """The largest ``k`` with ``k / n <= rate`` (float division, as the
    rates are reported).

    Args:
        rate: The allowed fraction, e.g. the ID false-positive rate
            ``alpha`` of the ``'id_fpr'`` rule.
        n: The number of pixels ``N``, an int >= 0.

    Returns:
        int: ``K`` in ``[0, n]``; ``floor(rate * n)`` corrected by one where
        float rounding puts it on the wrong side.
    """
    k = int(math.floor(rate * n))
    while k + 1 <= n and (k + 1) / n <= rate:
        k += 1
    while k > 0 and k / n > rate:
        k -= 1
    return k


def count_at_least(rate: float, n: int) -> int:
    """The smallest ``k`` with ``k / n >= rate`` (as
    :func:`~mmseg_ood.evaluation.functional.roc_pr.curve_metrics` reads TPR
    points).

    Args:
        rate: The fraction to reach, e.g. the OOD true-positive rate of the
            ``'tpr'`` rule.
        n: The number of pixels, an int >= 0.

    Returns:
        int: ``k`` in ``[0, n]``; ``n`` if no ``k`` reaches ``rate``.
    """
    k = int(math.ceil(rate * n))
    while k > 0 and (k - 1) / n >= rate:
        k -= 1
    while k < n and k / n < rate:
        k += 1
    return k


def rate_interval(k: np.ndarray, n: np.ndarray, level: float = 0.95
                  ) -> Dict[str, Optional[float]]:
    """A pooled rate ``sum k / sum n`` over images and its confidence
    interval, images as the sampled units (the module docstring).

    Args:
        k: ``(m,)`` per-image counts at or above the threshold.
        n: ``(m,)`` per-image pixel counts of the class (images with none
            are left out).
        level: Confidence level in (0, 1).

    Returns:
        dict: ``value``, ``low``, ``high`` (``None`` with fewer than 2
        images or no pixels), ``level``, ``pixels`` (``sum k``), ``of``
        (``sum n``), ``images`` (``m``).
    """
    from scipy.stats import norm
    k = np.asarray(k, np.float64)
    n = np.asarray(n, np.float64)
    keep = n > 0
    k, n = k[keep], n[keep]
    m, total = int(k.size), float(n.sum())
    out = dict(value=None, low=None, high=None, level=level,
               pixels=int(k.sum()), of=int(total), images=m)
    if total == 0:
        return out
    p = float(k.sum() / total)
    out['value'] = p
    if m >= 2:
        se = math.sqrt(m / (m - 1) * float(np.sum((k - p * n) ** 2))) / total
        z = float(norm.ppf(0.5 + level / 2))
        out['low'] = max(0.0, p - z * se)
        out['high'] = min(1.0, p + z * se)
    return out


class ImageRates(Accumulator):
    """Per-image counts at a threshold: ``(ID >= t, ID, OOD >= t, OOD)``
    rows, in image order; merging concatenates."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.rows = np.zeros((0, 4), np.int64)

    def update(self, scores: np.ndarray, labels: np.ndarray,
               threshold: float) -> 'ImageRates':
        """One image's valid ``scores`` and 0 / 1 ``labels`` (1-D)."""
        hit = scores >= threshold
        ood = labels == _OOD
        row = [int((hit & ~ood).sum()), int((~ood).sum()),
               int((hit & ood).sum()), int(ood.sum())]
        self.rows = np.vstack([self.rows, np.array([row], np.int64)])
        return self

    def state_dict(self) -> dict:
        return dict(rows=self.rows.copy())

    def load_state_dict(self, state: dict) -> 'ImageRates':
        self.rows = np.vstack([self.rows, np.asarray(state['rows'],
                                                     np.int64)])
        return self

    def compute(self, level: float = 0.95) -> dict:
        # sorted: the sums, to the last bit, whatever the order of images
        # and ranks
        r = self.rows[np.lexsort(self.rows.T[::-1])]
        out = OrderedDict(id_fpr=rate_interval(r[:, 0], r[:, 1], level))
        if r[:, 3].sum():
            out['tpr'] = rate_interval(r[:, 2], r[:, 3], level)
            tp, fp, pos = (int(r[:, 2].sum()), int(r[:, 0].sum()),
                           int(r[:, 3].sum()))
            out['precision'] = dict(value=tp / (tp + fp) if tp + fp else
                                    None, pixels=tp, of=tp + fp)
            out['f1'] = dict(value=2 * tp / (2 * tp + fp + (pos - tp)))
        return out


def _bin_of(values: np.ndarray, shift: np.uint32) -> np.ndarray:
    return (order_keys(values.astype(np.float32)) >> shift).astype(np.int64)


class BinValueCounts(Accumulator):
    """ID / OOD counts of each float32 value in a few histogram bins.

    The full-resolution read-back of :class:`OperatingPointMetric`: the
    bins are those holding the order statistic; each keeps a ``(2, size)``
    count over the low ``32 - bits`` bits of the order key.

    Args:
        bins: Histogram bins (the order key's high ``bits`` bits).
        size: ``2^(32 - bits)``, values per bin.
    """

    def __init__(self, bins, size: int):
        self.bins = tuple(int(b) for b in bins)
        self.size = int(size)
        self.reset()

    def reset(self) -> None:
        self.counts = {b: np.zeros((2, self.size), np.int64)
                       for b in self.bins}

    def update(self, keys: np.ndarray, labels: np.ndarray,
               shift) -> None:
        """Count ``keys`` (order keys) with their 0 / 1 ``labels``."""
        hi = (keys >> shift).astype(np.int64)
        low = np.uint32(self.size - 1)
        for b, counts in self.counts.items():
            sel = hi == b
            if sel.any():
                for c in (_ID, _OOD):
                    pick = sel & (labels == c)
                    counts[c] += np.bincount(keys[pick] & low,
                                             minlength=self.size)

    def state_dict(self) -> dict:
        return dict(counts={b: c.copy() for b, c in self.counts.items()})

    def load_state_dict(self, state: dict) -> 'BinValueCounts':
        for b, c in state['counts'].items():
            if b not in self.counts or c.shape != (2, self.size):
                raise InvalidValueError(
                    f'bin {b} with shape {c.shape} does not '
                    f'fit bins {self.bins} of size {self.size}')
            self.counts[b] += c
        return self

    def compute(self) -> Dict[int, np.ndarray]:
        return {b: c.copy() for b, c in self.counts.items()}


@METRICS.register_module()
@strict_arguments
class OperatingPointMetric(AccumulatingMetric):
    """The threshold of one scorer at an operating point, and the rates it
    achieves, exactly, in bounded memory (see the module docstring).

    Reads ``data_sample['ood_scores'][scorer]`` and, with
    ``labels='ood'``, the OOD label map (0 ID, 1 OOD, 255 void) in
    ``label_key``; with ``labels='id'``, every pixel is ID except those
    whose semantic label (``gt_sem_seg``, when the pipeline loads it) is
    ``ignore_index``.

    Args:
        scorer: The scorer's name in ``ood_scores``.
        rule: ``'id_fpr'``, ``'tpr'`` or ``'best_f1'``.
        target: The ID FPR (``id_fpr``) or TPR (``tpr``), in (0, 1);
            ``None`` for ``best_f1``.
        labels: ``'id'`` (ID data, no OOD labels; ``id_fpr`` only) or
            ``'ood'`` (a labelled OOD set).
        level: Confidence level of the intervals.
        bits: Histogram resolution (see :class:`PixelOODAccumulator`).
        ignore_index: Void label.
        label_key: Data-sample field of the labels.
        spill_dir: Directory for the spilled score maps (default: the
            system's temporary directory).
        collect_device / prefix: As in mmengine's ``BaseMetric``.

    Attributes:
        last_result: After ``evaluate``: ``threshold``, ``achieved`` (by
            rate name, see :func:`rate_interval`), ``id_pixels``,
            ``ood_pixels``, ``images``.

    References:
        W. G. Cochran, "Sampling Techniques", 3rd ed., Wiley 1977, sec. 6.4
        and 11.8 (the ratio estimator's variance over clusters); numpy's
        ``quantile(method='inverted_cdf')`` (Hyndman and Fan, "Sample
        quantiles in statistical packages", 1996, definition 1).
    """
    default_prefix = 'operating_point'

    def __init__(self, scorer: str, rule: str,
                 target: Optional[float] = None, labels: str = 'ood',
                 level: float = 0.95, bits: int = 20,
                 ignore_index: int = IGNORE_INDEX,
                 label_key: str = 'gt_sem_seg',
                 spill_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if rule not in OPERATING_RULES:
            raise InvalidValueError(
                f'`rule` must be one of {OPERATING_RULES}, got '
                f'{rule!r}')
        if rule == 'best_f1':
            if target is not None:
                raise InvalidValueError(
                    '`target` must be None for best_f1, got '
                    f'{target!r}')
        else:
            check_rate(target, f'{rule}: `target`')
        if labels not in ('id', 'ood'):
            raise InvalidValueError(f"`labels` must be 'id' or 'ood', got "
                                    f'{labels!r}')
        if labels == 'id' and rule != 'id_fpr':
            raise InvalidValueError(
                f'{rule} needs OOD labels (labels=\'ood\'); '
                'ID data alone gives only id_fpr')
        check_rate(level, '`level`')
        PixelOODAccumulator(bits=bits)  # validates bits
        self.scorer, self.rule, self.target = scorer, rule, target
        self.labels, self.level, self.bits = labels, level, bits
        self.ignore_index, self.label_key = ignore_index, label_key
        self.spill_dir = spill_dir
        self._shift = np.uint32(32 - bits)
        self.last_result: Optional[dict] = None
        self.reset()

    # per sample ---------------------------------------------------------
    def _labels_of(self, sample: dict, shape) -> np.ndarray:
        where = f'OperatingPointMetric ({sample.get("img_path")})'
        if self.labels == 'ood':
            lab = sample_ood_labels(sample, self.label_key, where)
            return flat_ood_labels(lab.reshape(shape), self.ignore_index,
                                   where)
        gt = sample.get('gt_sem_seg')
        if gt is None:  # images only: every pixel is ID
            return np.zeros(int(np.prod(shape)), np.uint8)
        gt = to_numpy(gt['data'] if isinstance(gt, dict) else gt.data)
        gt = gt.reshape(shape)
        return np.where(gt.reshape(-1) == self.ignore_index, VOID,
                        0).astype(np.uint8)

    def process_sample(self, sample: dict) -> None:
        scores = sample.get('ood_scores') or {}
        if self.scorer not in scores:
            raise MissingFieldError(
                f'OperatingPointMetric: no {self.scorer!r} in '
                f'ood_scores (have {sorted(scores)}); attach the '
                'scorer with OODScoringHook')
        s = to_numpy(scores[self.scorer]).astype(np.float32, copy=False)
        y = self._labels_of(sample, s.shape)
        if not check_finite(s.reshape(-1), y, self.scorer):
            y = np.where(np.isfinite(s.reshape(-1)), y, VOID).astype(
                np.uint8)
        self.accumulator('pixel', lambda: PixelOODAccumulator(
            self.bits, name=self.scorer)).update_valid(
                s.reshape(-1)[y != VOID], y[y != VOID])
        self.spill(y.reshape(s.shape), {self.scorer: s},
                   tag=sample.get('img_path'))

    # threshold ----------------------------------------------------------
    def _valid_maps(self):
        for _, labels, maps in self.spilled():
            y = labels.reshape(-1)
            valid = y != VOID
            yield maps[self.scorer].reshape(-1)[valid], y[valid]

    def _exact_counts(self, bins) -> Dict[int, np.ndarray]:
        """bin -> ``(2, 2^(32 - bits))`` ID / OOD counts of each float32
        value in the bin, over every rank's spilled maps."""
        local = BinValueCounts(bins, 1 << (32 - self.bits))
        for s, y in self._valid_maps():
            local.update(order_keys(s), y, self._shift)
        return merge_across_ranks({'exact': local})['exact'].compute()

    def _value(self, b: int, j: int) -> float:
        key = np.uint32((b << int(self._shift)) + j)
        return float(keys_to_values(np.array([key]))[0])

    def _exact_threshold(self, hist: PixelOODAccumulator) -> float:
        """``id_fpr`` / ``tpr``: the threshold, exact (module docstring)."""
        values, pos, neg = hist.counts_by_value()
        cls = _OOD if self.rule == 'tpr' else _ID
        counts = pos if cls == _OOD else neg
        n = int(counts.sum())
        if n == 0:
            raise InvalidValueError(
                f'{self.rule}: the calibration data has no '
                f'{"OOD" if cls == _OOD else "ID"} pixels for scorer '
                f'{self.scorer!r}')
        # r: how many of the class's pixels the threshold must reach from
        # the top (tpr), or one more than it may flag (id_fpr)
        r = count_at_least(self.target, n) if cls == _OOD else \
            count_at_most(self.target, n) + 1
        bins = _bin_of(values, self._shift)
        ub, inverse = np.unique(bins, return_inverse=True)
        per_bin = np.bincount(inverse, weights=counts,
                              minlength=ub.size).astype(np.int64)
        above = np.cumsum(per_bin[::-1])[::-1]  # class pixels in bins >= b
        i = int(np.flatnonzero(above >= r)[-1])  # holds the r-th largest
        wanted = [int(ub[i])]
        later = np.flatnonzero(per_bin[i + 1:])  # next bin with the class
        if cls == _ID and later.size:
            wanted.append(int(ub[i + 1 + later[0]]))
        exact = self._exact_counts(wanted)
        c = exact[wanted[0]][cls]
        beyond = int(above[i] - per_bin[i])  # in bins above the bin
        tail = beyond + np.cumsum(c[::-1])[::-1]  # >= each value of the bin
        j = int(np.flatnonzero((tail >= r) & (c > 0))[-1])
        if cls == _OOD:
            return self._value(wanted[0], j)
        # id_fpr: the smallest ID score above w = value j
        up = np.flatnonzero(c[j + 1:])
        if up.size:
            return self._value(wanted[0], j + 1 + int(up[0]))
        if len(wanted) > 1:
            return self._value(wanted[1],
                               int(np.flatnonzero(exact[wanted[1]][cls])[0]))
        # w is the largest ID score: flag none of them
        return float(np.nextafter(np.float32(self._value(wanted[0], j)),
                                  np.float32(np.inf)))

    def compute_accumulated(self, local) -> dict:
        merged = merge_across_ranks(
            OrderedDict((k, a) for k, a in local.items() if k == 'pixel'),
            lambda _: PixelOODAccumulator(self.bits, name=self.scorer))
        if 'pixel' not in merged:
            raise InvalidValueError('OperatingPointMetric got no images')
        hist = merged['pixel']
        if self.rule == 'best_f1':
            res = hist.compute()
            threshold = res['best_f1_threshold']
            if threshold != threshold:
                raise InvalidValueError(
                    'best_f1 needs both ID and OOD pixels; the '
                    f'calibration data has {res["num_id"]} ID '
                    f'and {res["num_ood"]} OOD pixels')
        else:
            threshold = self._exact_threshold(hist)
        rates = ImageRates()
        for s, y in self._valid_maps():
            rates.update(s, y, threshold)
        rates = merge_across_ranks({'rates': rates})['rates']
        achieved = rates.compute(self.level)
        self.last_result = dict(
            threshold=float(threshold), achieved=achieved,
            id_pixels=int(rates.rows[:, 1].sum()),
            ood_pixels=int(rates.rows[:, 3].sum()),
            images=int(rates.rows.shape[0]))
        flat = {'threshold': float(threshold)}
        for name, r in achieved.items():
            if r.get('value') is not None:
                flat[name] = r['value']
        return flat


def describe_rule(rule: str, target: Optional[float]) -> str:
    """The rule in words, for the calibration file and the tables.

    Args:
        rule: ``'id_fpr'``, ``'tpr'`` or ``'best_f1'``
            (:data:`OPERATING_RULES`).
        target: The rate of ``'id_fpr'`` / ``'tpr'``; not read for
            ``'best_f1'`` (``None``).

    Returns:
        str: One sentence, e.g. for ``'tpr'`` at 0.95: "largest threshold
        at which at least 0.95 of the OOD pixels are flagged (score >=
        threshold)".
    """
    if rule == 'id_fpr':
        return (f'smallest ID score above the (K + 1)-th largest, K = '
                f'max{{k : k / N <= {target:g}}} of the N ID pixels: at most '
                f'{target:g} of the ID pixels are flagged (score >= '
                'threshold)')
    if rule == 'tpr':
        return (f'largest threshold at which at least {target:g} of the OOD '
                'pixels are flagged (score >= threshold)')
    return 'threshold of the best pixel F1 (over the histogram bin edges)'


def threshold_summary(result: dict) -> Tuple[str, ...]:
    """Lines ``name: value [low, high]`` of the achieved rates.

    Args:
        result: :attr:`OperatingPointMetric.last_result`: its ``achieved``
            maps a rate's name to the dict :func:`rate_interval` returns.

    Returns:
        tuple: One str per rate with a value, e.g.
        ``'id_fpr: 0.04987 [0.0412, 0.05854] (95% CI, 20 images)'``; a
        rate without an interval has no brackets.
    """
    lines = []
    for name, r in result['achieved'].items():
        v = r.get('value')
        if v is None:
            continue
        ci = '' if r.get('low') is None else \
            f' [{r["low"]:.4g}, {r["high"]:.4g}] ({r["level"]:.0%} CI, ' \
            f'{r["images"]} images)'
        lines.append(f'{name}: {v:.4g}{ci}')
    return tuple(lines)
