"""Streaming pixel-level OOD metrics in memory independent of pixel count."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from ..labels import IGNORE_INDEX
from .curves import curve_metrics
from .accumulator import Accumulator
from .inputs import flat_scores_and_labels

#: Sign and exponent bits of a float32: a page of coarse bins is one binade.
_PAGE_LEVEL_BITS = 9
#: Pixels per chunk of an update (temporaries of a few hundred KiB).
_CHUNK = 1 << 16


def _order_keys(values: np.ndarray) -> np.ndarray:
    """float32 -> uint32 with the same order (IEEE-754 sign/magnitude trick).

    Positive floats get the sign bit set, negative floats are bit-inverted,
    so unsigned integer order equals float order. -0.0 becomes +0.0 first
    (they are equal, and must tie).
    """
    f = np.ascontiguousarray(values, dtype=np.float32) + np.float32(0.0)
    bits = f.view(np.uint32)
    # negative: flip all bits; positive: flip the sign bit only
    mask = (np.uint32(0) - (bits >> np.uint32(31))) | np.uint32(0x80000000)
    return bits ^ mask


def _keys_to_values(keys: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_order_keys` (uint32 keys -> float32 values)."""
    keys = keys.astype(np.uint32)
    pos = (keys >> np.uint32(31)).astype(bool)
    bits = np.where(pos, keys & np.uint32(0x7FFFFFFF), ~keys)
    return bits.view(np.float32)


class _FineCounts:
    """Full-resolution counts of one update's pixels in some refined bins.

    The bins are grouped into runs of nearby bins; a run is counted with one
    ``bincount`` over the 32-bit keys it covers (no per-pixel lookup of the
    bin). Unrefined bins inside a run are counted too and then dropped:
    their pixels are in the coarse counts.

    Args:
        bins: The refined bins, sorted.
        bits: The histogram's ``bits``.
    """
    #: Most unrefined bins between two refined bins of a run.
    GAP = 4
    #: Most bins in a run (its bincount has ``3 * bins * 2^(32 - bits)``
    #: entries).
    RUN = 16

    def __init__(self, bins: np.ndarray, bits: int):
        self.bins = bins
        self.shift = 32 - bits
        self.runs = []  # (first bin, number of bins)
        for b in bins.tolist():
            if self.runs and b - sum(self.runs[-1]) < self.GAP and \
                    b - self.runs[-1][0] < self.RUN:
                self.runs[-1][1] = b - self.runs[-1][0] + 1
            else:
                self.runs.append([b, 1])
        self.counts = [None] * len(self.runs)  # (3, bins, 2^(32 - bits))

    def add(self, keys: np.ndarray, labels: np.ndarray) -> None:
        """Count the pixels (order keys, labels 0 / 1 / 2) that fall in the
        refined bins."""
        for r, (first, num) in enumerate(self.runs):
            size = num << self.shift
            sub = keys - np.uint32(first << self.shift)  # wraps below first
            inside = sub < np.uint32(size)
            k = np.count_nonzero(inside)
            if k == 0:
                continue
            lab = labels
            if k < sub.size:
                sub, lab = sub[inside], labels[inside]
            sub = sub.astype(np.intp)
            sub += lab * np.intp(size)
            per = np.bincount(sub, minlength=3 * size)
            if self.counts[r] is None:
                self.counts[r] = per
            else:
                self.counts[r] += per

    def items(self):
        """``(bin, (2, 2^(32 - bits)) counts)`` of every refined bin."""
        for (first, num), c in zip(self.runs, self.counts):
            if c is None:
                continue
            c = c.reshape(3, num, -1)
            for b in self.bins[(self.bins >= first) &
                               (self.bins < first + num)].tolist():
                yield b, c[:2, b - first]


class StreamingOODMetric(Accumulator):
    """Pixel AUROC / AP / FPR@95 over a stream of images, mergeable.

    Scores of any float range (energies are unbounded) are binned by the top
    ``bits`` bits of an order-preserving integer key of their float32 value:
    a histogram with constant *relative* resolution over the whole float
    range, no range to know in advance. Each bin keeps ID and OOD counts.

    Bins that hold at least ``refine_fraction`` of an update's pixels (a
    cluster of nearly equal scores, as an untrained or saturated model
    gives) are *refined*: from then on their pixels are counted at full
    float32 resolution in a sub-histogram of ``2^(32 - bits)`` bins. Pixels
    a bin received before it was refined join the bin's most frequent exact
    value.

    The metrics are then exact for the scores rounded to their (sub-)bin:
    ``bits=20`` resolves about 5e-4 of a score's magnitude, refined bins
    float32 precision; exact ties stay ties, as in sklearn.

    Memory: the histogram is stored in *pages* of ``2^(bits - 9)`` bins (one
    binade of float32 values, ID and OOD int64 counts: 32 KiB at
    ``bits=20``), allocated when a score first falls in them; refined bins
    add ``2 * 2^(32 - bits)`` counts each (64 KiB at ``bits=20``). Scores
    that span a few binades take well under 1 MiB; the most, whatever the
    number of pixels, is 512 pages and ``max_refined`` sub-histograms:
    32 MiB at ``bits=20``. ``merge`` adds counts (a bin refined on either
    side is refined in the result), so workers merged equal one worker.
    An update costs a few passes over its pixels and a ``bincount`` over
    the bins between its smallest and largest score.

    Args:
        bits: Histogram resolution, 12 to 24.
        ignore_index: Void label, excluded.
        tpr_points: TPR levels for ``fpr@tpr<p>`` (0.95 always included).
        name: Scorer name, used in messages.
        refine_fraction: Share of an update's pixels that makes a bin
            refined (in (0, 1]).
        max_refined: Most refined bins kept.

    Example:
        >>> m = StreamingOODMetric(name='energy')
        >>> for score_map, label_map in stream:
        ...     m.update(score_map, label_map)
        >>> m.compute()['auroc']
    """

    def __init__(self, bits: int = 20, ignore_index: int = IGNORE_INDEX,
                 tpr_points: Sequence[float] = (0.95, ),
                 name: str = 'scores', refine_fraction: float = 0.01,
                 max_refined: int = 256):
        if not isinstance(bits, int) or not 12 <= bits <= 24:
            raise ValueError(
                f'`bits` must be an int in [12, 24], got {bits!r}')
        for p in tpr_points:
            if not 0.0 < p <= 1.0:
                raise ValueError(f'`tpr_points` must be in (0, 1], got {p}')
        if not 0.0 < refine_fraction <= 1.0:
            raise ValueError('`refine_fraction` must be in (0, 1], got '
                             f'{refine_fraction}')
        if not isinstance(max_refined, int) or max_refined < 0:
            raise ValueError('`max_refined` must be an int >= 0, got '
                             f'{max_refined!r}')
        self.bits = bits
        self.ignore_index = ignore_index
        self.tpr_points = tuple(tpr_points)
        self.name = name
        self.refine_fraction = refine_fraction
        self.max_refined = max_refined
        self._shift = np.uint32(32 - bits)
        self._page_bits = bits - _PAGE_LEVEL_BITS
        self._pages: Dict[int, np.ndarray] = {}  # page -> (2, 2^page_bits)
        self.refined: Dict[int, np.ndarray] = {}  # bin -> (2, 2^(32-bits))

    @property
    def nbytes(self) -> int:
        """Accumulator memory in bytes."""
        return sum(p.nbytes for p in self._pages.values()) + \
            sum(f.nbytes for f in self.refined.values())

    @property
    def counts(self) -> np.ndarray:
        """The coarse histogram as one dense ``(2, 2^bits)`` array [ID, OOD]
        (a copy, 16 MiB at ``bits=20``; for inspection). A refined bin's
        entry holds the pixels it received before it was refined."""
        size = 1 << self._page_bits
        dense = np.zeros((2, 1 << self.bits), np.int64)
        for page, c in self._pages.items():
            dense[:, page * size:(page + 1) * size] = c
        return dense

    def _add_refined(self, b: int) -> None:
        self.refined[b] = np.zeros((2, 1 << (32 - self.bits)), np.int64)

    def update(self, scores, labels) -> 'StreamingOODMetric':
        """Add one image (or batch): scores and 0/1/void labels of one shape.

        Raises:
            ValueError: shapes differ, unknown labels, NaN/Inf scores.
        """
        s, y = flat_scores_and_labels(scores, labels, self.ignore_index,
                                      self.name)
        return self.update_valid(s, y)

    def update_valid(self, scores: np.ndarray,
                     labels: np.ndarray) -> 'StreamingOODMetric':
        """Add pixels that are already validated.

        Args:
            scores: 1-D float scores, finite wherever ``labels`` is 0 or 1.
            labels: 1-D uint8 of the same length: 0 ID, 1 OOD, 2 skipped
                (void pixels, so that callers need not copy the valid ones
                out).

        :meth:`update` validates with
        :func:`~mmseg_ood.evaluation.inputs.flat_scores_and_labels`, then
        calls this.
        """
        n = scores.size
        if n == 0:
            return self
        # the bins this update spans, page-aligned: keys preserve order, so
        # the extreme scores give the extreme bins
        lo, hi = (int(k) >> int(self._shift) for k in _order_keys(
            np.array([scores.min(), scores.max()], np.float32)))
        if hi - lo < _FineCounts.RUN and \
                all(b in self.refined for b in range(lo, hi + 1)):
            # every pixel falls in refined bins (a cluster already seen):
            # full resolution only, no coarse counts to take them out of
            fine = _FineCounts(np.arange(lo, hi + 1), self.bits)
            for i in range(0, n, _CHUNK):
                fine.add(_order_keys(scores[i:i + _CHUNK]),
                         labels[i:i + _CHUNK])
            for b, c in fine.items():
                self.refined[b] += c
            return self
        size = 1 << self._page_bits
        base = lo >> self._page_bits << self._page_bits
        span = ((hi - base) // size + 1) * size
        refined = np.fromiter(self.refined, np.int64, len(self.refined))
        fine = _FineCounts(np.sort(refined[(refined >= base) &
                                           (refined < base + span)]),
                           self.bits)
        # one bincount per chunk of pixels over (class, bin): chunks keep
        # the temporaries small and cached instead of page-faulted in
        # (at least twice as many pixels as bins, so that wide spans are
        # not zeroed and added once per few pixels)
        cnt = np.zeros(3 * span, np.int64)
        step = max(_CHUNK, 2 * span)
        for i in range(0, n, step):
            keys = _order_keys(scores[i:i + step])
            rel = keys >> self._shift
            rel -= np.uint32(base)
            flat = rel.astype(np.intp)
            flat += labels[i:i + step] * np.intp(span)
            cnt += np.bincount(flat, minlength=3 * span)
            fine.add(keys, labels[i:i + step])
        cnt = cnt.reshape(3, span)[:2]  # row 2: skipped pixels
        valid = int(cnt.sum())
        self._add_fine(fine, cnt, base)
        # refine the bins holding >= refine_fraction of this update; their
        # pixels of this update are counted finely in a second pass
        if len(self.refined) < self.max_refined and valid:
            heavy = np.flatnonzero(cnt[0] + cnt[1] >=
                                   self.refine_fraction * valid) + base
            new = [b for b in heavy.tolist() if b not in self.refined]
            new = new[:self.max_refined - len(self.refined)]
            if new:
                for b in new:
                    self._add_refined(b)
                fine = _FineCounts(np.array(new, np.int64), self.bits)
                for i in range(0, n, _CHUNK):
                    fine.add(_order_keys(scores[i:i + _CHUNK]),
                             labels[i:i + _CHUNK])
                self._add_fine(fine, cnt, base)
        # add the coarse counts page by page (pages allocated on first use)
        per_page = cnt.reshape(2, span // size, size)
        for j in np.flatnonzero(per_page.any(axis=(0, 2))).tolist():
            page = (base >> self._page_bits) + j
            if page in self._pages:
                self._pages[page] += per_page[:, j]
            else:
                self._pages[page] = per_page[:, j].copy()
        return self

    def _add_fine(self, fine: '_FineCounts', cnt: np.ndarray,
                  base: int) -> None:
        """Add the full-resolution counts of refined bins; remove their
        pixels from the coarse counts ``cnt`` (from bin ``base`` on) of the
        same update."""
        for b, c in fine.items():
            self.refined[b] += c
            cnt[:, b - base] = 0

    def merge(self, other: 'StreamingOODMetric') -> 'StreamingOODMetric':
        """Add another accumulator's counts (same ``bits``) into this one."""
        if not isinstance(other, StreamingOODMetric) or \
                other.bits != self.bits:
            raise ValueError('can only merge a StreamingOODMetric with the '
                             f'same `bits` ({self.bits})')
        return self.load_state_dict(other.state_dict())

    def state_dict(self) -> dict:
        """Compact state: the nonzero bins only (for gathering across ranks):
        ``index`` into the flattened ``(2, 2^bits)`` histogram (ascending)
        and ``count``, and each refined bin's nonzero sub-bins."""
        size = 1 << self._page_bits
        index, count = [], []
        for page in sorted(self._pages):
            c = self._pages[page]
            for cls in (0, 1):
                nz = np.flatnonzero(c[cls])
                index.append(nz + (cls << self.bits) + page * size)
                count.append(c[cls, nz])
        order = np.argsort(np.concatenate(index + [np.zeros(0, np.int64)]),
                           kind='stable')
        refined = {}
        for b, f in self.refined.items():
            fz = np.flatnonzero(f.reshape(-1))
            refined[b] = (fz, f.reshape(-1)[fz])
        return dict(
            bits=self.bits,
            index=np.concatenate(index + [np.zeros(0, np.int64)])[order],
            count=np.concatenate(count + [np.zeros(0, np.int64)])[order],
            refined=refined)

    def load_state_dict(self, state: dict) -> 'StreamingOODMetric':
        """Add a :meth:`state_dict` into this accumulator."""
        if state['bits'] != self.bits:
            raise ValueError(f"state has bits={state['bits']}, this metric "
                             f'{self.bits}')
        index = np.asarray(state['index'], np.int64)
        count = np.asarray(state['count'], np.int64)
        cls, b = index >> self.bits, index & ((1 << self.bits) - 1)
        page, off = b >> self._page_bits, b & ((1 << self._page_bits) - 1)
        for p in np.unique(page).tolist():
            m = page == p
            if p not in self._pages:
                self._pages[p] = np.zeros((2, 1 << self._page_bits), np.int64)
            np.add.at(self._pages[p], (cls[m], off[m]), count[m])
        for b, (index, count) in state.get('refined', {}).items():
            if b not in self.refined:  # merged in beyond max_refined too
                self._add_refined(b)
            np.add.at(self.refined[b].reshape(-1), index, count)
        return self

    def reset(self) -> None:
        self._pages = {}
        self.refined = {}

    def _distinct(self):
        """(values ascending, OOD counts, ID counts) over every occupied
        (sub-)bin; a refined bin's coarse counts join its fullest sub-bin."""
        size = 1 << self._page_bits
        bins, coarse = [np.zeros(0, np.int64)], [np.zeros((2, 0), np.int64)]
        for page in sorted(self._pages):
            c = self._pages[page]
            used = np.flatnonzero(c.sum(axis=0))
            bins.append(used + page * size)
            coarse.append(c[:, used])
        bins, coarse = np.concatenate(bins), np.concatenate(coarse, axis=1)
        keys, pos, neg = [], [], []
        sub_size = 1 << (32 - self.bits)
        drop = np.zeros(bins.size, bool)
        for b, f in self.refined.items():
            f = f.copy()
            # pixels counted before the bin was refined: known only to lie
            # in the bin; put them with its most frequent exact value
            j = int(np.searchsorted(bins, b))
            if j < bins.size and bins[j] == b:
                f[:, int(np.argmax(f.sum(axis=0)))] += coarse[:, j]
                drop[j] = True
            used = np.flatnonzero(f.sum(axis=0))
            keys.append((np.uint64(b) * np.uint64(sub_size) +
                         used.astype(np.uint64)))
            neg.append(f[0, used])
            pos.append(f[1, used])
        keep = ~drop
        keys.append(bins[keep].astype(np.uint64) << np.uint64(self._shift))
        neg.append(coarse[0, keep])
        pos.append(coarse[1, keep])
        keys = np.concatenate(keys)
        order = np.argsort(keys, kind='stable')
        values = _keys_to_values(keys[order].astype(np.uint32))
        return (values.astype(np.float64), np.concatenate(pos)[order],
                np.concatenate(neg)[order])

    def curve(self, max_points: int = 2000) -> Dict[str, np.ndarray]:
        """ROC and precision-recall points (thresholds descending), for
        plotting; thinned to at most ``max_points`` (the end points kept).

        Returns:
            dict of arrays ``fpr``, ``tpr`` (= recall), ``precision``,
            ``threshold``; empty arrays if a class is missing.
        """
        values, pos, neg = self._distinct()
        tp = np.cumsum(pos[::-1]).astype(np.float64)
        fp = np.cumsum(neg[::-1]).astype(np.float64)
        if tp.size == 0 or tp[-1] == 0 or fp[-1] == 0:
            empty = np.zeros(0)
            return dict(fpr=empty, tpr=empty, precision=empty,
                        threshold=empty)
        keep = np.unique(np.linspace(0, tp.size - 1,
                                     min(max_points, tp.size)).astype(int))
        return dict(fpr=fp[keep] / fp[-1], tpr=tp[keep] / tp[-1],
                    precision=tp[keep] / (tp[keep] + fp[keep]),
                    threshold=values[::-1][keep])

    def compute(self) -> Dict[str, float]:
        """AUROC, AP, FPR@95, best F1 and its threshold, FPR / threshold at
        each TPR point, and the ID / OOD pixel counts (see
        :func:`~mmseg_ood.evaluation.curves.curve_metrics`). Thresholds are
        (sub-)bin lower edges."""
        values, pos, neg = self._distinct()
        return curve_metrics(pos, neg, values, self.tpr_points, self.name)
