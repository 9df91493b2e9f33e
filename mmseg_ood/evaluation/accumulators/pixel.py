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
#: Pages of any histogram (every binade of both signs).
_PAGES = 1 << _PAGE_LEVEL_BITS
#: Pixels per chunk of an update: the temporaries of a chunk (at most 37
#: bytes a pixel) stay in the CPU caches.
_CHUNK = 1 << 16
#: Pixels counted by one ``bincount`` (8 bytes each): its histogram is
#: zeroed and added once per batch, so a batch holds at least as many
#: pixels as the histogram has entries (up to _MAX_BATCH), and the zeroing
#: is a fraction of the work.
_BATCH = 1 << 18
_MAX_BATCH = 1 << 21
#: Scores sampled from an update to guess where it falls: more where bins
#: were heavy before (so that the sample finds the heavy bins to watch).
_SAMPLE = 1024
_SAMPLE_HEAVY = 4096
#: Expected-value table entry of a bin that is not watched (see
#: :func:`_scan`): far from every low-bits value.
_NOT_WATCHED = np.uint32(0x80000000)

_U32 = np.uint32


class _Columns:
    """Where an update counts each bin: the columns of its histogram.

    *Dense*: every bin of the pages ``first`` to ``first + npages - 1``,
    bin ``b`` at column ``b - first * size``. *Gap* (given ``gap``, a run
    of pages ``[g0, g1)`` inside the span where no score is expected): the
    same, but the gap's pages share one overflow page in their place, bin
    ``b`` at ``c - clip(c - (g0 - first) size, 0, (g1 - g0 - 1) size)``
    with ``c`` its dense column (three arithmetic steps). *Compact* (given
    the ``known`` pages, where scores are expected): the bins of those
    pages, then one overflow page that the bins of all other pages share;
    bin ``b`` of page ``p`` is at column ``b + shift[p]``, one lookup in a
    table of the 512 pages. Gap and compact histograms are as wide as the
    pages the scores fill, not as the span between the extreme scores:
    scores of both signs span every binade of small magnitude between them,
    the gap.

    Args:
        page_bits: ``log2`` of the bins per page.
        first: First page of the update's span.
        npages: Pages of the span.
        known: Sorted absolute pages for a compact histogram, or ``None``.
        gap: ``(g0, g1)``, absolute pages, for a gap histogram, or ``None``.
    """

    def __init__(self, page_bits: int, first: int, npages: int,
                 known: Optional[np.ndarray] = None,
                 gap: Optional[Tuple[int, int]] = None):
        size = 1 << page_bits
        self.page_bits = page_bits
        self.size = size
        self.base = first * size
        self.shift = None
        self.gap = None
        # the blocks of pages in column order, and where the overflow page
        # sits among them (None: there is none)
        if known is not None:
            self.pages = np.asarray(known, np.intp)
            k = self.pages.size
            shift = (k - np.arange(_PAGES, dtype=np.intp)) * size
            shift[self.pages] = (np.arange(k) - self.pages) * size
            self.shift = shift
            self.spill = k
        elif gap is not None:
            g0, g1 = gap
            span = first + np.arange(npages, dtype=np.intp)
            self.pages = span[(span < g0) | (span >= g1)]
            self.gap = ((g0 - first) * size, (g1 - g0 - 1) * size)
            self.spill = g0 - first
        else:
            self.pages = first + np.arange(npages, dtype=np.intp)
            self.spill = None
        self.ncols = (self.pages.size + (self.spill is not None)) * size

    @property
    def compact(self) -> bool:
        """Whether a table lookup finds the columns (compact layout)."""
        return self.shift is not None

    def of(self, bins: np.ndarray) -> np.ndarray:
        """Columns of the absolute ``bins`` (intp)."""
        bins = np.asarray(bins, np.intp)
        if self.shift is not None:
            return bins + self.shift[bins >> self.page_bits]
        c = bins - self.base
        if self.gap is not None:
            c -= np.clip(c - self.gap[0], 0, self.gap[1])
        return c

    def spills(self, page: int) -> bool:
        """Whether the bins of absolute ``page`` are counted in the
        overflow page."""
        if self.shift is not None:
            return page not in set(self.pages.tolist())
        if self.gap is not None:
            g0 = self.gap[0] // self.size + self.base // self.size
            g1 = g0 + self.gap[1] // self.size + 1
            return g0 <= page < g1
        return False

    def blocks(self, counts: np.ndarray) -> list:
        """``(2, ncols)`` counts -> ``[pages, (2, P, size) blocks, ...]``
        without the overflow page (two pairs where it is in the middle)."""
        blocks = counts.reshape(2, -1, self.size)
        if self.spill is None:
            return [self.pages, blocks]
        s = self.spill
        out = [self.pages[:s], blocks[:, :s]]
        if s < self.pages.size:
            out += [self.pages[s:], blocks[:, s + 1:]]
        return out


def _scan(scores: np.ndarray, labels: np.ndarray, columns: _Columns,
          bits: int, rows: int, coarse: bool = True,
          watch: Optional[np.ndarray] = None,
          expected: Optional[np.ndarray] = None, signed: bool = True
          ) -> Tuple[Optional[Tuple[np.ndarray, np.ndarray]],
                     Optional[np.ndarray]]:
    """One pass over an update: coarse counts, and the exact values of the
    watched bins' pixels that are not where they were expected.

    Coarse counts go to one ``bincount`` per batch over (label, column)
    (see :class:`_Columns`); label-major entries (``label * ncols +
    column``) keep each label's counts contiguous. The ID and OOD pixels
    that reach the overflow page of a gap or compact histogram (a cheap
    test per chunk finds whether there are any) are then counted again by
    bin.

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
        columns: The histogram's columns; every score's page is among
            them or (compact) counted in the overflow page.
        bits: The histogram's ``bits``.
        rows: 1 + the largest label (2 or 3).
        coarse: Whether to count every pixel per bin.
        watch: ``(W,)`` watched bins (absolute, in pages of ``columns``),
            or ``None``.
        expected: ``(W,)`` uint32 expected low bits per watched bin.
        signed: Whether ``scores`` may hold -0.0 (which must become +0.0
            before its key is taken: they are equal); without it, float32
            scores are read in place rather than copied.

    Returns:
        tuple: the coarse counts as pairs ``pages, blocks, ...`` of sorted
        absolute pages ``(P,)`` and their ``(2, P, 2^(bits - 9))`` int64
        counts [ID, OOD]: the histogram's pages (two pairs where a gap
        splits them), then, where pixels reached the overflow page, the
        pages of those (``None`` without ``coarse``); and ``(W, 2, 2^(32 -
        bits))`` int64 counts of the mismatching pixels (``None`` if there
        are none).
    """
    n = scores.size
    shift = 32 - bits
    sub = 1 << shift
    size = columns.size
    ncols = columns.ncols
    width = rows * ncols if coarse else 0
    step = min(n, _CHUNK)
    # pixels per bincount: at least as many as its histogram has entries
    batch = min(n, max(_BATCH, min(width, _MAX_BATCH)))
    batch = -(-batch // step) * step  # whole chunks
    # 32-bit work arrays: half the memory traffic of intp; intp only where
    # numpy wants it (indices of the page lookup and of bincount). float32
    # scores are keyed in place where no -0.0 can be, or where -0.0 and
    # +0.0 both reach the overflow page (their pages 255 and 256 have no
    # columns): -0.0's key is then corrected there, one pixel at a time
    fix_zero = signed and coarse and columns.spills(_PAGES // 2 - 1) and \
        columns.spills(_PAGES // 2)
    in_place = (not signed or fix_zero) and \
        scores.dtype == np.float32 and scores.flags.c_contiguous
    fix_zero = fix_zero and in_place
    zero_bin = np.intp(1 << (bits - 1))  # +0.0's bin
    flt = None if in_place else np.empty(step, np.float32)
    key = np.empty(step, _U32)
    tmp = np.empty(step, _U32)
    col = np.empty(step, np.int32)
    rel = np.empty(step, _U32)
    page = np.empty(step, np.intp) if columns.compact else None
    shift_table = None if not columns.compact else \
        columns.shift.astype(np.int32)
    gap = columns.gap
    if coarse:
        idx = np.empty(min(n, batch), np.intp)
        w32 = np.empty(step, np.int32)  # label-major column, 32 bits
        cnt = None
        pending, npending = [], 0
        spill = ncols - size  # first column of the compact overflow page
    nw = 0 if watch is None else int(watch.size)
    fine = None
    if nw:
        watch_cols = columns.of(watch)
        table = np.full(ncols, _NOT_WATCHED, _U32)
        table[watch_cols] = expected
        slot = None  # column -> offset of its sub-histogram, when needed
        fine_width = rows * nw * sub
        missed, nmissed = [], 0
        off = np.empty(step, _U32)
        miss = np.empty(step, bool)
    # constants and views made once: a chunk is a few dozen numpy calls,
    # whose Python overhead (and allocations) would otherwise add up
    zero, c1, c31 = np.float32(0.0), _U32(1), np.int32(31)
    sign, cshift, low = _U32(0x80000000), _U32(shift), _U32(sub - 1)
    cpage = _U32(shift + columns.page_bits)
    limit = _U32(2 * sub - 1)
    cbase = None if columns.compact else np.int32(columns.base)
    if gap is not None:
        cgap, cclip, gap_cols = np.int32(gap[0]), np.int32(gap[1]), \
            _U32(gap[1] + size)
    cncols = np.int32(ncols)

    def overflow(at, lab, r, k):
        """``label * 2^bits + bin`` of the chunk's ID and OOD pixels
        ``at`` (those in the overflow page)."""
        at = at[lab[at] < 2]
        found = r[at].astype(np.intp)
        if fix_zero:  # -0.0 is +0.0
            found[k[at] == _U32(0x7FFFFFFF)] = zero_bin
        return found + lab[at] * np.intp(1 << bits)

    m = 0
    start = 0  # first pixel of the current batch
    for i in range(0, n, step):
        j = min(n, i + step)
        if j - i != m:  # the first and the last chunk
            m = j - i
            k, t, c, r = key[:m], tmp[:m], col[:m], rel[:m]
            ti, ri = t.view(np.int32), r.view(np.int32)
            if not in_place:
                f = flt[:m]
                b = f.view(_U32)
                bi = b.view(np.int32)
            pg = None if page is None else page[:m]
            w = w32[:m] if coarse else None
            o, bad = (off[:m], miss[:m]) if nw else (None, None)
        # order keys (see order_keys), into preallocated buffers: fresh
        # temporaries per chunk would cost more than the arithmetic.
        # Adding +0.0 makes -0.0 +0.0; the arithmetic shift gives -1 for
        # negative floats, so the mask is all ones there, the sign bit
        # alone elsewhere
        if in_place:
            b = scores[i:j].view(_U32)
            bi = b.view(np.int32)
        else:
            # in float32: a float64 score that rounds to -0.0 becomes +0.0
            np.add(scores[i:j], zero, f, dtype=np.float32)
        np.right_shift(bi, c31, ti)
        np.bitwise_or(t, sign, t)
        np.bitwise_xor(b, t, k)
        np.right_shift(k, cshift, r)
        if gap is not None:
            # the dense column less the part of it inside the gap (t: the
            # column from the gap's start, unsigned: < gap_cols inside)
            np.subtract(ri, cbase, c)
            np.subtract(c, cgap, ti)
            if coarse and t.min() < gap_cols:
                pending.append(overflow(np.flatnonzero(t < gap_cols),
                                        labels[i:j], r, k))
                npending += pending[-1].size
            np.clip(ti, 0, cclip, out=ti)
            np.subtract(c, ti, c)
        elif cbase is not None:
            np.subtract(ri, cbase, c)
        else:
            np.right_shift(k, cpage, pg)
            shift_table.take(pg, None, c, 'clip')
            np.add(c, ri, c)
        lab = labels[i:j]
        if coarse:
            # label * ncols + column in 32 bits, then widened for bincount:
            # mixed uint8 / intp arithmetic would cast in a slower loop
            np.copyto(w, lab)
            np.multiply(w, cncols, w)
            np.add(w, c, w)
            np.copyto(idx[i - start:j - start], w)
            if j - start == idx.size or j == n:
                per = np.bincount(idx[:j - start], None, width)
                if cnt is None:
                    cnt = per
                else:
                    cnt += per
                start = j
            if columns.compact and c.max() >= spill:
                # pixels in the overflow page (pages the sample missed:
                # few), again by bin: label * 2^bits + bin
                pending.append(overflow(np.flatnonzero(c >= spill), lab, r,
                                        k))
                npending += pending[-1].size
        if nw:
            table.take(c, None, o, 'clip')
            np.bitwise_and(k, low, t)
            # o ^ low bits: 0 where expected; in [1, sub) where not; in
            # [sub, 2 sub) where no value is expected; >= 2^31 unwatched
            np.bitwise_xor(o, t, o)
            np.subtract(o, c1, o)
            np.less(o, limit, bad)
            if bad.any():
                if slot is None:
                    slot = np.zeros(ncols, np.intp)
                    slot[watch_cols] = np.arange(nw) * sub
                at = np.flatnonzero(bad)
                fi = slot[c[at]]
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
    parts = columns.blocks(cnt[:2 * ncols])
    if npending:
        # few pixels (pages in the tail of a distribution): sort them
        # rather than zero and scan a histogram of every page; their pages
        # follow the others (the pages are then not sorted: copying every
        # page's counts to sort them would cost more)
        uniq, num = np.unique(np.concatenate(pending), return_counts=True)
        lab, b = uniq >> bits, uniq & ((1 << bits) - 1)
        new, at = np.unique(b >> columns.page_bits, return_inverse=True)
        more = np.zeros((2, new.size, size), np.int64)
        more[lab, at, b & (size - 1)] = num  # (label, bin) are unique
        parts += [new, more]
    return tuple(parts), fine


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
    that became heavy unforeseen, over those only); its temporaries are at
    most 37 bytes per pixel of a chunk (2^16 pixels), 8 bytes per pixel of
    a batch (2^18 to 2^21 pixels), 16 to 24 bytes per bin of the pages its
    scores fill (its own histogram, counted into and added), and, where
    bins expected to be heavy hold more than one exact value, the
    sub-histograms of up to ``2 / refine_fraction`` of them (under 40 MiB
    at ``bits=20``). Measured: 6 to 11 MiB for 512x1024 images.

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
        self.reset()

    @property
    def _pages(self) -> Dict[int, np.ndarray]:
        """Page -> its ``(2, 2^page_bits)`` counts [ID, OOD] (views of the
        store), pages ascending."""
        pages = np.flatnonzero(self._slot >= 0)
        return {int(p): self._store[:, self._slot[p]] for p in pages}

    def _rows(self, pages: np.ndarray) -> np.ndarray:
        """The store's rows of ``pages`` (distinct), allocated (zero) for
        the pages that have none yet."""
        rows = self._slot[pages]
        new = pages[rows < 0]
        if new.size:
            have = self._store.shape[1]
            self._slot[new] = have + np.arange(new.size)
            self._store = np.concatenate([self._store, np.zeros(
                (2, new.size, 1 << self._page_bits), np.int64)], axis=1)
            rows = self._slot[pages]
        return rows

    @property
    def nbytes(self) -> int:
        """Accumulator memory in bytes."""
        return self._store.nbytes + \
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
        smin, smax = scores.min(), scores.max()
        if smin != smin or smax != smax:
            # NaN on skipped pixels (allowed there): leave those out
            keep = labels < 2
            scores, labels, rows = scores[keep], labels[keep], 2
            if scores.size == 0:
                return self
            smin, smax = scores.min(), scores.max()
        # the pages this update spans: keys preserve order, so the extreme
        # scores give the extreme bins
        lo, hi = (int(k) >> int(self._shift) for k in order_keys(
            np.array([smin, smax], np.float32)))
        pb = self._page_bits
        size = 1 << pb
        first, npages = lo >> pb, (hi >> pb) - (lo >> pb) + 1
        # guesses, which set the speed only (the counts are exact whatever
        # they are): a strided sample of the update shows the pages its
        # scores fall in and, per bin, the most frequent exact value
        stride = max(1, n // (_SAMPLE_HEAVY if self.refined else _SAMPLE))
        sample_bins, sample_low, sample_num = self._sample(scores[::stride])
        # watch the bins that look heavy in the sample (at most 2 /
        # refine_fraction), expecting the value they mostly held so far if
        # refined, else the sample's
        likely = sample_num >= max(
            2.0, 0.5 * self.refine_fraction * sample_num.sum())
        if self.max_refined == 0:
            likely[:] = False
        watch = sample_bins[likely]
        expected = np.array(
            [self._expected(b) if b in self.refined else e for b, e in
             zip(watch.tolist(), sample_low[likely].tolist())], np.uint32)
        # count coarsely into the pages where scores fell before or fall in
        # the sample, if they are few (see _Columns)
        seen = np.flatnonzero(self._slot[first:first + npages] >= 0) + first
        known = np.union1d(seen, sample_bins >> pb)
        dense = 2 * (known.size + 1) > npages
        if dense:
            columns = _Columns(pb, first, npages)
        else:
            # the longest run of the span's pages where no score is
            # expected: if the others are few, they are counted densely
            # and the run shares one overflow page (no table lookup)
            ends = np.r_[first - 1, known, first + npages]
            runs = np.diff(ends) - 1
            g = int(np.argmax(runs))
            if npages - runs[g] + 1 <= 2 * (known.size + 1):
                columns = _Columns(pb, first, npages,
                                   gap=(int(ends[g]) + 1, int(ends[g + 1])))
            else:
                columns = _Columns(pb, first, npages, known)
        # -0.0 is possible only if 0 is in the range
        signed = bool(smin <= 0 <= smax)
        coarse, miss = _scan(scores, labels, columns, self.bits, rows,
                             watch=watch, expected=expected, signed=signed)
        # (pages, blocks) pairs, each pair's pages ascending
        parts = [coarse[k:k + 2] for k in range(0, len(coarse), 2)
                 if coarse[k].size]
        # the bins heavy in this update (every pixel is in `parts`): only a
        # page with that many pixels can hold one
        per_page = [b.sum(axis=2).sum(axis=0) for _, b in parts]
        valid = int(sum(int(p.sum()) for p in per_page))
        limit = self.refine_fraction * valid
        heavy = []
        if valid and self.max_refined:
            for (pages, blocks), sums in zip(parts, per_page):
                full = np.flatnonzero(sums >= limit)
                if full.size:
                    tot = blocks[0, full] + blocks[1, full]
                    at, off = np.nonzero(tot >= limit)
                    heavy += ((pages[full[at]] << pb) + off).tolist()
        # of those, the bins whose sub-histograms are kept get this update's
        # pixels at full resolution
        counted = self._admit(heavy) & set(heavy)
        fine = [(watch, expected, miss)]
        new = np.array(sorted(counted - set(watch.tolist())), np.int64)
        if new.size:
            # heavy bins not watched: a second pass over those only,
            # expecting the values that the sample shows
            at = np.minimum(np.searchsorted(sample_bins, new),
                            max(sample_bins.size - 1, 0))
            guess = np.full(new.size, 1 << (32 - self.bits), np.uint32)
            if sample_bins.size:
                hit = sample_bins[at] == new
                guess[hit] = sample_low[at[hit]]
            if not dense:  # the pages of the new bins get columns too
                columns = _Columns(pb, first, npages,
                                   np.union1d(known, new >> pb))
            _, miss = _scan(scores, labels, columns, self.bits, rows,
                            coarse=False, watch=new, expected=guess,
                            signed=signed)
            fine.append((new, guess, miss))
        touched = set()  # (part, page) with pixels counted finely
        for bins, expect, miss in fine:
            take = np.array([b in counted for b in bins.tolist()], bool)
            if not take.any():
                continue
            bins, expect = bins[take], expect[take]
            # each bin's part and page there (a bin's page is in one part)
            found = [(k, j) for b in (bins >> pb).tolist()
                     for k, (pages, _) in enumerate(parts)
                     for j in np.flatnonzero(pages == b).tolist()]
            part = np.array([k for k, _ in found], np.intp)
            at = np.array([j for _, j in found], np.intp)
            off = bins & (size - 1)
            now = np.zeros((2, bins.size), np.int64)
            for k, (_, blocks) in enumerate(parts):
                sel = part == k
                now[:, sel] = blocks[:, at[sel], off[sel]]
                blocks[:, at[sel], off[sel]] = 0  # counted finely instead
            self._add_fine(bins, now, expect,
                           None if miss is None else miss[take])
            touched.update(zip(part.tolist(), at.tolist()))
        # add the coarse counts (pages allocated on first use; a page whose
        # pixels were all counted finely is checked again)
        for k, ((pages, blocks), sums) in enumerate(zip(parts, per_page)):
            used = sums > 0
            for kk, at in touched:
                if kk == k and not blocks[:, at].any():
                    used[at] = False
            at = np.flatnonzero(used)
            if at.size:
                rows = self._rows(pages[at])  # may grow the store
                if at[-1] - at[0] == at.size - 1 and \
                        (np.diff(rows) == 1).all():
                    # consecutive rows (the usual case: pages stored in
                    # the order first seen): added in place, no copies
                    self._store[:, rows[0]:rows[-1] + 1] += \
                        blocks[:, at[0]:at[-1] + 1]
                else:
                    self._store[:, rows] += blocks[:, at]
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

    def _sample(self, scores: np.ndarray
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The bins (absolute, ascending) that ``scores`` fall in, and per
        bin the low key bits of its most frequent exact value and the
        number of scores."""
        keys, num = np.unique(order_keys(scores), return_counts=True)
        bins = (keys >> self._shift).astype(np.intp)
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
        row = self._rows(np.array([page], np.intp))[0]
        self._store[:, row, off] += fine.sum(axis=1)

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
        for page, c in self._pages.items():  # pages ascending
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
        if index.size:
            self._rows(np.unique(page).astype(np.intp))
            np.add.at(self._store, (cls, self._slot[page], off), count)
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
        # the coarse counts: rows of one array, one per page where scores
        # fell (page -> row in _slot, -1 for none), so that an update adds
        # all its pages at once
        self._store = np.zeros((2, 0, 1 << self._page_bits), np.int64)
        self._slot = np.full(_PAGES, -1, np.intp)
        self.refined: Dict[int, np.ndarray] = {}  # bin -> (2, 2^(32-bits))
        # bin -> the exact value (low key bits) its pixels are expected at:
        # a speed hint for the next update only, not part of the state
        self._expect: Dict[int, int] = {}

    def _distinct(self):
        """(values ascending, OOD counts, ID counts) over every occupied
        (sub-)bin; a refined bin's coarse counts join its most frequent
        exact value (the first of equally frequent ones)."""
        size = 1 << self._page_bits
        pages = np.flatnonzero(self._slot >= 0)
        if pages.size:
            stack = self._store[:, self._slot[pages]].reshape(2, -1)
            used = np.flatnonzero(stack.sum(axis=0))
            bins = pages[used >> self._page_bits] * size + (used & (size - 1))
            coarse = stack[:, used]
        else:
            bins, coarse = np.zeros(0, np.int64), np.zeros((2, 0), np.int64)
        if not self.refined:  # the bins ascend already
            values = keys_to_values((bins.astype(np.uint64) << np.uint64(
                self._shift)).astype(np.uint32))
            return values.astype(np.float64), coarse[1], coarse[0]
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
                if self._slot[b // size] >= 0 and
                self._store[:, self._slot[b // size], b % size].any()]
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
