"""Streaming pixel-level OOD metrics in memory independent of pixel count."""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX
from ..functional.float_keys import keys_to_values, order_keys
from ..functional.inputs import flat_scores_and_labels
from ..functional.roc_pr import curve_metrics
from .base import Accumulator

#: Sign and exponent bits of a float32: a page of coarse bins is one binade.
_PAGE_LEVEL_BITS = 9
#: Pixels per chunk of an update: the temporaries of a chunk (about 33
#: bytes a pixel) stay in the CPU caches. A chunk grows with the histogram
#: it is counted into, up to _MAX_CHUNK.
_CHUNK = 1 << 17
_MAX_CHUNK = 1 << 20
#: Scores sampled from an update to guess where it falls.
_SAMPLE = 4096
#: Expected-value table entry of a bin that is not watched (see
#: :func:`_scan`): far from every low-bits value.
_NOT_WATCHED = np.uint32(0x80000000)

_U32 = np.uint32


def _scan(scores: np.ndarray, labels: np.ndarray, base: int, span: int,
          bits: int, rows: int, known: Optional[np.ndarray] = None,
          coarse: bool = True, watch: Optional[np.ndarray] = None,
          expected: Optional[np.ndarray] = None
          ) -> Tuple[Optional[Tuple[np.ndarray, np.ndarray]],
                     Optional[np.ndarray]]:
    """One pass over an update: coarse counts, and the exact values of the
    watched bins' pixels that are not where they were expected.

    Coarse counts go to one ``bincount`` per chunk over (bin, label): over
    every bin of the span, or, given the ``known`` pages (where scores are
    expected), over the bins of those pages and of one overflow page that
    all other pages share (one table lookup per pixel). The pixels of a
    chunk that reach the overflow page are then counted again by bin. The
    histogram of a chunk is zeroed and added once per chunk, so a compact
    one lets chunks stay small enough for the caches.

    A watched bin ``watch[j]`` expects its pixels at one exact value
    (``expected[j]``, the low ``32 - bits`` bits of the order key; ``2^(32 -
    bits)`` expects none). A pixel is checked with one table lookup and a
    compare; only the pixels off their expected value (in a bin of heavy
    ties: none) are taken out and counted at full resolution. A watched
    bin's full-resolution counts are then the mismatches plus, at the
    expected value, its coarse counts less the mismatches: exact whatever
    the expectation, which only sets the speed.

    Args:
        scores: ``(N,)`` float scores of the update.
        labels: ``(N,)`` labels 0 / 1 / 2 (2: skipped).
        base: First bin counted, page-aligned; every score's bin is in
            ``[base, base + span)``.
        span: Number of bins counted, whole pages.
        bits: The histogram's ``bits``.
        rows: 1 + the largest label (2 or 3).
        known: Sorted pages (relative to ``base``) for a compact histogram,
            or ``None``.
        coarse: Whether to count every pixel per bin.
        watch: ``(W,)`` watched bins (absolute), or ``None``.
        expected: ``(W,)`` uint32 expected low bits per watched bin.

    Returns:
        tuple: the coarse counts as ``(pages, blocks)``, sorted pages
        relative to ``base`` ``(P,)`` and their ``(2, P, 2^(bits - 9))``
        int64 counts [ID, OOD] (``None`` without ``coarse``); and
        ``(W, 2, 2^(32 - bits))`` int64 counts of the mismatching pixels
        (``None`` if there are none).
    """
    n = scores.size
    shift = 32 - bits
    sub = 1 << shift
    page_bits = bits - _PAGE_LEVEL_BITS
    size = 1 << page_bits
    npages = span // size
    width = 0
    if coarse:
        if known is None:
            cols = span
        else:
            # bin -> column: the known pages first, then one overflow page
            # that the bins of all other pages share
            col = np.arange(span, dtype=np.intp)
            np.bitwise_and(col, size - 1, out=col)
            col += known.size * size
            col.reshape(npages, size)[known] = np.arange(
                known.size * size).reshape(-1, size)
            col *= rows  # entry of (bin, label): rows * column + label
            overflow = np.ones(npages, bool)
            overflow[known] = False
            cols = (known.size + 1) * size
            pending, npending = [], 0
        width = rows * cols
    # the histogram of a chunk has `width` entries, zeroed and added: at
    # least as many pixels as entries keeps that a fraction of the work
    step = min(n, max(_CHUNK, min(width, _MAX_CHUNK)))
    flt = np.empty(step, np.float32)
    key = np.empty(step, _U32)
    tmp = np.empty(step, _U32)
    rel = np.empty(step, np.intp)
    if coarse:
        idx = np.empty(step, np.intp)
        cnt = np.zeros(width, np.int64)
    nw = 0 if watch is None else int(watch.size)
    fine = None
    if nw:
        table = np.full(span, _NOT_WATCHED, _U32)
        table[watch - base] = expected
        slot = None  # bin -> offset of its sub-histogram, when needed
        fine_width = rows * nw * sub
        missed, nmissed = [], 0
        off = np.empty(step, _U32)
        miss = np.empty(step, bool)
    # constants and views made once: a chunk is a few dozen numpy calls,
    # whose Python overhead (and allocations) would otherwise add up
    zero, c0, c1, c31 = np.float32(0.0), _U32(0), _U32(1), _U32(31)
    sign, cshift, low = _U32(0x80000000), _U32(shift), _U32(sub - 1)
    limit, cbase, crows = _U32(2 * sub - 1), np.intp(base), np.intp(rows)
    m = 0
    for i in range(0, n, step):
        j = min(n, i + step)
        if j - i != m:  # the first and the last chunk
            m = j - i
            f, b, k, t, r = (flt[:m], flt[:m].view(_U32), key[:m], tmp[:m],
                             rel[:m])
            ix = idx[:m] if coarse else None
            o, bad = (off[:m], miss[:m]) if nw else (None, None)
        # order keys (see order_keys), into preallocated buffers: fresh
        # temporaries per chunk would cost more than the arithmetic
        np.add(scores[i:j], zero, f)
        np.right_shift(b, c31, t)
        np.subtract(c0, t, t)
        np.bitwise_or(t, sign, t)
        np.bitwise_xor(b, t, k)
        np.right_shift(k, cshift, r)
        np.subtract(r, cbase, r)
        lab = labels[i:j]
        if coarse:
            if known is None:
                np.multiply(r, crows, ix)
            else:
                col.take(r, None, ix, 'clip')
            np.add(ix, lab, ix)
            per = np.bincount(ix, None, width)
            cnt += per
            if known is not None and per[-rows * size:].any():
                at = np.flatnonzero(overflow[r >> page_bits])
                pending.append(r[at] + lab[at] * np.intp(span))
                npending += at.size
        if nw:
            table.take(r, None, o, 'clip')
            np.bitwise_and(k, low, t)
            # o ^ low bits: 0 where expected; in [1, sub) where not; in
            # [sub, 2 sub) where no value is expected; >= 2^31 unwatched
            np.bitwise_xor(o, t, o)
            np.subtract(o, c1, o)
            np.less(o, limit, bad)
            if bad.any():
                if slot is None:
                    slot = np.zeros(span, np.intp)
                    slot[watch - base] = np.arange(nw) * sub
                at = np.flatnonzero(bad)
                fi = slot[r[at]]
                fi += t[at]
                fi += lab[at] * np.intp(nw * sub)
                missed.append(fi)
                nmissed += fi.size
                if nmissed >= fine_width:
                    fine = _add_counts(fine, missed, fine_width)
                    missed, nmissed = [], 0
    if nw and missed:
        fine = _add_counts(fine, missed, fine_width)
    if fine is not None:
        fine = fine.reshape(rows, nw, sub)[:2].transpose(1, 0, 2)
    if not coarse:
        return None, fine
    blocks = cnt.reshape(-1, size, rows).transpose(2, 0, 1)[:2]
    if known is None:
        return (np.arange(npages), blocks), fine
    pages, blocks = known, blocks[:, :-1]
    if npending:
        flat = np.concatenate(pending)
        flat = flat[flat < 2 * span]  # skipped pixels
        if flat.size > span // 4:
            more = np.bincount(flat, minlength=2 * span).reshape(2, -1, size)
            new = np.flatnonzero(more.any(axis=(0, 2)))
            more = more[:, new]
        else:
            # few pixels (new pages in the tail of a distribution): sort
            # them rather than zero and scan a histogram of the whole span
            uniq, num = np.unique(flat, return_counts=True)
            lab, b = uniq // span, uniq % span
            new = np.unique(b >> page_bits)
            more = np.zeros((2, new.size, size), np.int64)
            np.add.at(more, (lab, np.searchsorted(new, b >> page_bits),
                             b & (size - 1)), num)
        pages = np.concatenate([pages, new])
        order = np.argsort(pages)
        pages = pages[order]
        blocks = np.concatenate([blocks, more], axis=1)[:, order]
    return (pages, blocks), fine


def _add_counts(counts: Optional[np.ndarray], indices: list,
                width: int) -> np.ndarray:
    """``counts`` (``None``: zeros) plus the bincount of ``indices``."""
    per = np.bincount(np.concatenate(indices), minlength=width)
    if counts is None:
        return per
    counts += per
    return counts


def _smallest(bins: Iterable[int], k: int) -> set:
    """The ``k`` smallest of ``bins``."""
    return set(sorted(bins)[:k])


class PixelOODAccumulator(Accumulator):
    """Pixel AUROC / AP / FPR@95 over a stream of images, mergeable.

    Scores of any float range (energies are unbounded) are binned by the top
    ``bits`` bits of an order-preserving integer key of their float32 value:
    a histogram with constant *relative* resolution over the whole float
    range, no range to know in advance. A bin spans about
    ``2^-(bits - 9)`` of a score's magnitude (5e-4 at ``bits=20``) and keeps
    ID and OOD counts; exact ties stay ties, as in sklearn.

    In each update (one :meth:`update` call, e.g. an image), the bins that
    hold at least ``refine_fraction`` of the update's valid pixels (*heavy*
    bins: heavy ties, or the tight cluster of nearly equal scores of an
    untrained or saturated model) count that update's pixels at full
    float32 resolution, in a sub-histogram of the bin's ``2^(32 - bits)``
    exact values. A bin's pixels from updates where it is not heavy are
    counted coarsely, whether or not it has a sub-histogram; at
    :meth:`compute`, a bin with both kinds of counts puts its coarse pixels
    with its most frequent exact value (the first of equally frequent
    ones). The metrics are thus exact for the scores rounded to their bin,
    or to float32 where counted finely: heavy ties are exact.

    Sub-histograms are kept for at most ``max_refined`` bins: the
    ``max_refined`` smallest of all the bins ever heavy. When a smaller bin
    becomes heavy, the largest kept one is dropped and its fine counts join
    its coarse count; a heavy bin beyond the kept ones is counted coarsely.

    Order-free: whether a pixel is counted finely depends only on its own
    update and on the set of all bins ever heavy, so the state, and the
    metrics bit for bit, are the same whatever the order of the updates and
    however they are split over accumulators merged in any order
    (:meth:`merge`, :meth:`load_state_dict`,
    :func:`~mmseg_ood.evaluation.accumulators.base.merge_across_ranks`; all
    with
    the same ``bits``, ``refine_fraction`` and ``max_refined``).

    Memory: the histogram is stored in *pages* of ``2^(bits - 9)`` bins (one
    binade of float32 values, ID and OOD int64 counts: 32 KiB at
    ``bits=20``), allocated when a score first falls in them, at most 512
    pages (``2^(bits + 4)`` bytes); a sub-histogram takes
    ``2^(36 - bits)`` bytes (64 KiB at ``bits=20``). Scores that span a few
    binades take well under 1 MiB; the most, whatever the number of pixels,
    is 16 + 16 = 32 MiB at ``bits=20`` and ``max_refined=256``. An update
    makes one pass over its pixels, in chunks (a second one for the bins
    that became heavy unforeseen, over those only); its temporaries are
    about 33 bytes per pixel of a chunk (2^17 to 2^20 pixels), at most 20
    bytes per bin its scores span and, where bins expected to be heavy hold
    more than one exact value, the sub-histograms of up to
    ``2 / refine_fraction`` of them (under 40 MiB at ``bits=20``).

    Args:
        bits: Histogram resolution, 12 to 24.
        ignore_index: Void label, excluded.
        tpr_points: TPR levels for ``fpr@tpr<p>`` (0.95 always included).
        name: Scorer name, used in messages.
        refine_fraction: Share of an update's valid pixels that makes a
            bin heavy in that update (in (0, 1]).
        max_refined: Most sub-histograms kept (>= 0; 0: coarse only).

    Example:
        >>> m = PixelOODAccumulator(name='energy')
        >>> for score_map, label_map in stream:
        ...     m.update(score_map, label_map)
        >>> m.compute()['auroc']
    """

    def __init__(self, bits: int = 20, ignore_index: int = IGNORE_INDEX,
                 tpr_points: Sequence[float] = (0.95, ),
                 name: str = 'scores', refine_fraction: float = 0.01,
                 max_refined: int = 256):
        if not isinstance(bits, int) or not 12 <= bits <= 24:
            raise InvalidValueError(
                f'`bits` must be an int in [12, 24], got {bits!r}')
        for p in tpr_points:
            if not 0.0 < p <= 1.0:
                raise InvalidValueError(
                    f'`tpr_points` must be in (0, 1], got {p}')
        if not 0.0 < refine_fraction <= 1.0:
            raise InvalidValueError('`refine_fraction` must be in (0, 1], got '
                                    f'{refine_fraction}')
        if not isinstance(max_refined, int) or max_refined < 0:
            raise InvalidValueError('`max_refined` must be an int >= 0, got '
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
        # bin -> the exact value (low key bits) its pixels are expected at:
        # a speed hint for the next update only, not part of the state
        self._expect: Dict[int, int] = {}

    @property
    def nbytes(self) -> int:
        """Accumulator memory in bytes."""
        return sum(p.nbytes for p in self._pages.values()) + \
            sum(f.nbytes for f in self.refined.values())

    @property
    def counts(self) -> np.ndarray:
        """The coarse histogram as one dense ``(2, 2^bits)`` array [ID, OOD]
        (a copy, 16 MiB at ``bits=20``; for inspection). A refined bin's
        entry holds its pixels of the updates where it was not heavy."""
        size = 1 << self._page_bits
        dense = np.zeros((2, 1 << self.bits), np.int64)
        for page, c in self._pages.items():
            dense[:, page * size:(page + 1) * size] = c
        return dense

    def update(self, scores, labels) -> 'PixelOODAccumulator':
        """Add one image (or batch): scores and 0/1/void labels of one shape.

        Raises:
            ValueError: shapes differ, unknown labels, NaN/Inf scores.
        """
        s, y = flat_scores_and_labels(scores, labels, self.ignore_index,
                                      self.name)
        return self.update_valid(s, y)

    def update_valid(self, scores: np.ndarray,
                     labels: np.ndarray) -> 'PixelOODAccumulator':
        """Add pixels that are already validated.

        Args:
            scores: 1-D float scores, finite wherever ``labels`` is 0 or 1.
            labels: 1-D uint8 of the same length: 0 ID, 1 OOD, 2 skipped
                (void pixels, so that callers need not copy the valid ones
                out).

        :meth:`update` validates with
        :func:`~mmseg_ood.evaluation.functional.inputs.flat_scores_and_labels`,
        then
        calls this.

        Raises:
            ValueError: a label is not 0, 1 or 2.
        """
        n = scores.size
        if n == 0:
            return self
        top = int(labels.max())
        if top > 2 or (labels.dtype.kind == 'i' and int(labels.min()) < 0):
            raise InvalidValueError('update_valid: labels must be 0, 1 or 2 '
                                    f'(skipped), found {top}')
        rows = 3 if top == 2 else 2
        # the bins this update spans, page-aligned: keys preserve order, so
        # the extreme scores give the extreme bins
        lo, hi = (int(k) >> int(self._shift) for k in order_keys(
            np.array([scores.min(), scores.max()], np.float32)))
        pb = self._page_bits
        size = 1 << pb
        base = lo >> pb << pb
        npages = (hi - base) // size + 1
        span = npages * size
        # guesses, which set the speed only (the counts are exact whatever
        # they are): a strided sample of the update shows the pages its
        # scores fall in and, per bin, the most frequent exact value
        sample_bins, sample_low, sample_num = self._sample(
            scores[::max(1, n // _SAMPLE)], base, span)
        # watch the bins that look heavy in the sample (at most 2 /
        # refine_fraction), expecting the value they mostly held so far if
        # refined, else the sample's
        likely = sample_num >= max(
            2.0, 0.5 * self.refine_fraction * sample_num.sum())
        if self.max_refined == 0:
            likely[:] = False
        watch = sample_bins[likely] + base
        expected = np.array(
            [self._expected(b) if b in self.refined else e for b, e in
             zip(watch.tolist(), sample_low[likely].tolist())], np.uint32)
        # count coarsely into the pages where scores fell before or fall in
        # the sample, if they are few (see _scan)
        known = np.union1d(
            np.array([p - (base >> pb) for p in self._pages
                      if 0 <= p - (base >> pb) < npages], np.intp),
            sample_bins >> pb)
        if 2 * (known.size + 1) > npages:
            known = None
        (pages, blocks), miss = _scan(scores, labels, base, span, self.bits,
                                      rows, known, watch=watch,
                                      expected=expected)
        # the bins heavy in this update (every pixel is in `blocks`)
        tot = blocks[0] + blocks[1]
        valid = int(tot.sum())
        if valid == 0 or self.max_refined == 0:
            heavy = []
        else:
            at, off = np.nonzero(tot >= self.refine_fraction * valid)
            heavy = (base + (pages[at] << pb) + off).tolist()
        # of those, the bins whose sub-histograms are kept get this update's
        # pixels at full resolution
        counted = self._admit(heavy) & set(heavy)
        parts = [(watch, expected, miss)]
        new = np.array(sorted(counted - set(watch.tolist())), np.int64)
        if new.size:
            # heavy bins not watched: a second pass over those only,
            # expecting the values that the sample shows
            at = np.minimum(np.searchsorted(sample_bins, new - base),
                            max(sample_bins.size - 1, 0))
            guess = np.full(new.size, 1 << (32 - self.bits), np.uint32)
            if sample_bins.size:
                hit = sample_bins[at] == new - base
                guess[hit] = sample_low[at[hit]]
            _, miss = _scan(scores, labels, base, span, self.bits, rows,
                            coarse=False, watch=new, expected=guess)
            parts.append((new, guess, miss))
        for bins, expect, miss in parts:
            take = np.array([b in counted for b in bins.tolist()], bool)
            if not take.any():
                continue
            bins, expect = bins[take], expect[take]
            at = np.searchsorted(pages, (bins - base) >> pb)
            off = (bins - base) & (size - 1)
            self._add_fine(bins, blocks[:, at, off], expect,
                           None if miss is None else miss[take])
            blocks[:, at, off] = 0  # counted finely instead
        # add the coarse counts page by page (pages allocated on first use)
        for at in np.flatnonzero(blocks.any(axis=(0, 2))).tolist():
            self._add_page((base >> pb) + int(pages[at]), blocks[:, at])
        return self

    def _add_fine(self, bins: np.ndarray, coarse: np.ndarray,
                  expected: np.ndarray, miss: Optional[np.ndarray]) -> None:
        """Add an update's full-resolution counts of heavy bins ``bins``
        (S,): the mismatching pixels ``miss`` (S, 2, 2^(32 - bits)) and the
        rest of their ``coarse`` (2, S) counts at the ``expected`` (S,)
        exact values (see :func:`_scan`)."""
        missed = np.zeros((bins.size, 2), np.int64) if miss is None else \
            miss.sum(axis=2)
        matched = coarse.T - missed  # none where no value was expected
        # keep expecting a value while it holds most of the bin's pixels
        keep = (matched.sum(axis=1) >= missed.sum(axis=1)).tolist()
        for j, (b, e, (m0, m1), any_missed) in enumerate(zip(
                bins.tolist(), expected.tolist(), matched.tolist(),
                missed.any(axis=1).tolist())):
            f = self.refined.get(b)
            if f is None:
                f = self.refined[b] = np.zeros((2, 1 << (32 - self.bits)),
                                               np.int64)
            if any_missed:
                f += miss[j]
            if m0 or m1:
                f[0, e] += m0
                f[1, e] += m1
            if keep[j]:
                self._expect[b] = e
            else:
                self._expect.pop(b, None)

    def _sample(self, scores: np.ndarray, base: int, span: int
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The bins (relative to ``base``, ascending) that ``scores`` fall
        in, and per bin the low key bits of its most frequent exact value
        and the number of scores."""
        keys, num = np.unique(order_keys(scores), return_counts=True)
        bins = (keys >> self._shift).astype(np.intp) - base
        inside = (bins >= 0) & (bins < span)  # finite scores
        keys, num, bins = keys[inside], num[inside], bins[inside]
        if keys.size == 0:
            return bins, keys, num
        # per bin: the first of its most frequent keys
        order = np.lexsort((-num, bins))
        first = np.r_[True, bins[order][1:] != bins[order][:-1]]
        mode = order[first]
        total = np.add.reduceat(num[order], np.flatnonzero(first))
        low = keys[mode] & np.uint32((1 << (32 - self.bits)) - 1)
        return bins[mode], low, total

    def _expected(self, b: int) -> int:
        """Low key bits where refined bin ``b``'s pixels are expected: the
        most frequent exact value so far (cached)."""
        e = self._expect.get(b)
        if e is None:
            e = self._expect[b] = int(np.argmax(self.refined[b].sum(axis=0)))
        return e

    def _admit(self, heavy: Iterable[int]) -> set:
        """Keep the sub-histograms of the ``max_refined`` smallest bins of
        ``refined`` and ``heavy``; return the kept bins.

        Why the state does not depend on the order of updates and merges:
        let U be the set of bins heavy in any update counted so far and K =
        ``max_refined``. Invariant: the kept bins are the K smallest of U,
        a kept bin's sub-histogram holds exactly its pixels of the updates
        where it was heavy, and every other pixel is in the coarse counts;
        this is a function of the set of updates. It holds for no update.
        Adding an update with heavy bins H (or merging a state, H = its
        kept bins, the K smallest of its U'): the K smallest of kept | H
        are the K smallest of U | H (resp. U | U'), since the bins of U
        that are not kept are larger than K kept ones. A newly kept bin
        was never heavy here before (it would be among the K smallest of
        U, so kept), so its fine counts are complete; a dropped bin's fine
        counts join its coarse count, as if it had never been kept.
        """
        keep = _smallest(set(self.refined) | set(heavy), self.max_refined)
        for b in [b for b in self.refined if b not in keep]:
            self._fold(b, self.refined.pop(b))
        return keep

    def _fold(self, b: int, fine: np.ndarray) -> None:
        """Add full-resolution counts of bin ``b`` to its coarse count."""
        self._expect.pop(b, None)
        page, off = b >> self._page_bits, b & ((1 << self._page_bits) - 1)
        if page not in self._pages:
            self._pages[page] = np.zeros((2, 1 << self._page_bits), np.int64)
        self._pages[page][:, off] += fine.sum(axis=1)

    def _add_page(self, page: int, counts: np.ndarray) -> None:
        if page in self._pages:
            self._pages[page] += counts
        else:
            self._pages[page] = counts.copy()

    def merge(self, other: 'PixelOODAccumulator') -> 'PixelOODAccumulator':
        """Add another accumulator's counts (same ``bits``,
        ``refine_fraction`` and ``max_refined``) into this one."""
        if not isinstance(other, PixelOODAccumulator):
            raise InvalidValueError(
                'can only merge a PixelOODAccumulator, got '
                f'{type(other).__name__}')
        return self.load_state_dict(other.state_dict())

    def state_dict(self) -> dict:
        """Compact state: the nonzero bins only (for gathering across ranks):
        ``index`` into the flattened ``(2, 2^bits)`` histogram (ascending)
        and ``count``, each refined bin's nonzero sub-bins, and the
        parameters that merged states must share."""
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
        for b in sorted(self.refined):
            f = self.refined[b].reshape(-1)
            fz = np.flatnonzero(f)
            refined[b] = (fz, f[fz])
        return dict(
            bits=self.bits,
            refine_fraction=self.refine_fraction,
            max_refined=self.max_refined,
            index=np.concatenate(index + [np.zeros(0, np.int64)])[order],
            count=np.concatenate(count + [np.zeros(0, np.int64)])[order],
            refined=refined)

    def load_state_dict(self, state: dict) -> 'PixelOODAccumulator':
        """Add a :meth:`state_dict` into this accumulator.

        Sub-histograms are kept for the ``max_refined`` smallest bins of
        both; the others' fine counts join their coarse counts, as
        :meth:`update` does.

        Raises:
            ValueError: the state's ``bits``, ``refine_fraction`` or
                ``max_refined`` differs from this metric's.
        """
        for key in ('bits', 'refine_fraction', 'max_refined'):
            if state.get(key, getattr(self, key)) != getattr(self, key):
                raise InvalidValueError(
                    f'state has {key}={state[key]!r}, this '
                    f'metric {getattr(self, key)!r}')
        index = np.asarray(state['index'], np.int64)
        count = np.asarray(state['count'], np.int64)
        cls, b = index >> self.bits, index & ((1 << self.bits) - 1)
        page, off = b >> self._page_bits, b & ((1 << self._page_bits) - 1)
        for p in np.unique(page).tolist():
            m = page == p
            if p not in self._pages:
                self._pages[p] = np.zeros((2, 1 << self._page_bits), np.int64)
            np.add.at(self._pages[p], (cls[m], off[m]), count[m])
        other = {int(b): v for b, v in state.get('refined', {}).items()}
        keep = self._admit(other)
        sub = 1 << (32 - self.bits)
        for b, (index, count) in other.items():
            fine = np.zeros((2, sub), np.int64)
            np.add.at(fine.reshape(-1), np.asarray(index, np.int64),
                      np.asarray(count, np.int64))
            if b in keep:
                if b in self.refined:
                    self.refined[b] += fine
                    self._expect.pop(b, None)
                else:
                    self.refined[b] = fine
            else:
                self._fold(b, fine)
        return self

    def reset(self) -> None:
        self._pages = {}
        self.refined = {}
        self._expect = {}

    def _distinct(self):
        """(values ascending, OOD counts, ID counts) over every occupied
        (sub-)bin; a refined bin's coarse counts join its most frequent
        exact value (the first of equally frequent ones)."""
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
        for b in sorted(self.refined):
            f = self.refined[b].copy()
            # pixels of updates where the bin was not heavy: known only to
            # lie in the bin; put them with its most frequent exact value
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
        values = keys_to_values(keys[order].astype(np.uint32))
        return (values.astype(np.float64), np.concatenate(pos)[order],
                np.concatenate(neg)[order])

    def counts_by_value(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The histogram as ``(values, OOD counts, ID counts)``, values
        ascending: every occupied bin at its lower edge, a refined bin's
        exact values at full resolution (its coarse pixels with its most
        frequent exact value), as the metrics see them."""
        return self._distinct()

    def refined_edges(self) -> np.ndarray:
        """float32 lower edges of the refined bins that also hold coarse
        pixels (counted where the bin was not heavy), ascending."""
        size = 1 << self._page_bits
        bins = [b for b in sorted(self.refined)
                if (b // size) in self._pages and
                self._pages[b // size][:, b % size].any()]
        keys = np.array(bins, np.uint64) << np.uint64(self._shift)
        return keys_to_values(keys.astype(np.uint32))

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
        :func:`~mmseg_ood.evaluation.functional.roc_pr.curve_metrics`).
        Thresholds are
        (sub-)bin lower edges."""
        values, pos, neg = self._distinct()
        return curve_metrics(pos, neg, values, self.tpr_points, self.name)
