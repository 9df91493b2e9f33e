"""Streaming pixel-level OOD metrics in memory independent of pixel count."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from .curves import curve_metrics
from .inputs import valid_scores_and_labels


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


class StreamingOODMetric:
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

    Memory: ``2 * 2^bits`` int64 counts (16 MiB at ``bits=20``), a
    ``2^bits`` bool mask and int32 slot table (5 MiB) and at most
    ``max_refined`` sub-histograms of ``2 * 2^(32 - bits)`` counts (64 KiB
    each at ``bits=20``): at most 37 MiB, whatever the number of pixels.
    ``merge`` adds counts (a bin refined on either side is refined in the
    result), so workers merged equal one worker.

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

    def __init__(self, bits: int = 20, ignore_index: int = 255,
                 tpr_points: Sequence[float] = (0.95, ),
                 name: str = 'scores', refine_fraction: float = 0.01,
                 max_refined: int = 256):
        if not isinstance(bits, int) or not 12 <= bits <= 24:
            raise ValueError(f'`bits` must be an int in [12, 24], got {bits!r}')
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
        self.counts = np.zeros((2, 1 << bits), np.int64)  # [ID, OOD]
        self.refined: Dict[int, np.ndarray] = {}  # bin -> (2, 2^(32-bits))
        self._is_refined = np.zeros(1 << bits, bool)
        self._slot = np.zeros(1 << bits, np.int32)  # bin -> refined index

    @property
    def nbytes(self) -> int:
        """Accumulator memory in bytes."""
        return self.counts.nbytes + self._is_refined.nbytes + \
            self._slot.nbytes + sum(f.nbytes for f in self.refined.values())

    def _add_refined(self, b: int) -> None:
        self._slot[b] = len(self.refined)
        self.refined[b] = np.zeros((2, 1 << (32 - self.bits)), np.int64)
        self._is_refined[b] = True

    def _refine(self, bins) -> None:
        for b in bins:
            if b not in self.refined and len(self.refined) < self.max_refined:
                self._add_refined(b)

    def update(self, scores, labels) -> 'StreamingOODMetric':
        """Add one image (or batch): scores and 0/1/void labels of one shape.

        Raises:
            ValueError: shapes differ, unknown labels, NaN/Inf scores.
        """
        s, y = valid_scores_and_labels(scores, labels, self.ignore_index,
                                       self.name)
        n = s.size
        if n == 0:
            return self
        keys = _order_keys(s)
        idx = (keys >> self._shift).astype(np.int64)
        y = y.astype(np.int64)
        nbins = self.counts.shape[1]
        # bins holding >= refine_fraction of the pixels, found on a sample
        # of at most ~32k pixels (a sort that small is cheap)
        sample = idx[::max(1, n // 32768)]
        cand, cnt = np.unique(sample, return_counts=True)
        self._refine(
            cand[cnt >= self.refine_fraction * sample.size].tolist())
        if self.refined:
            fine = self._is_refined[idx]
            if fine.any():
                sub_size = 1 << (32 - self.bits)
                bins = list(self.refined)  # insertion order = slot order
                sub = (keys[fine] & np.uint32(sub_size - 1)).astype(np.int64)
                flat = (self._slot[idx[fine]].astype(np.int64) * 2 +
                        y[fine]) * sub_size + sub
                per = np.bincount(flat, minlength=len(bins) * 2 * sub_size)
                per = per.reshape(len(bins), 2, sub_size)
                for i in np.flatnonzero(per.reshape(len(bins), -1).any(1)):
                    self.refined[bins[i]] += per[i]
                # the other pixels go to the coarse histogram
                idx, y = idx[~fine], y[~fine]
        pair = idx + y * nbins
        if pair.size * 8 >= nbins:  # dense: one bincount over (class, bin)
            self.counts += np.bincount(pair, minlength=2 * nbins).reshape(
                2, nbins)
        elif pair.size:  # few pixels: sparse counts
            flat, cnt = np.unique(pair, return_counts=True)
            np.add.at(self.counts.reshape(-1), flat, cnt)
        return self

    def merge(self, other: 'StreamingOODMetric') -> 'StreamingOODMetric':
        """Add another accumulator's counts (same ``bits``) into this one."""
        if not isinstance(other, StreamingOODMetric) or \
                other.bits != self.bits:
            raise ValueError('can only merge a StreamingOODMetric with the '
                             f'same `bits` ({self.bits})')
        return self.load_state_dict(other.state_dict())

    def state_dict(self) -> dict:
        """Compact state: the nonzero bins only (for gathering across ranks)."""
        nz = np.flatnonzero(self.counts.reshape(-1))
        refined = {}
        for b, f in self.refined.items():
            fz = np.flatnonzero(f.reshape(-1))
            refined[b] = (fz, f.reshape(-1)[fz])
        return dict(bits=self.bits, index=nz,
                    count=self.counts.reshape(-1)[nz], refined=refined)

    def load_state_dict(self, state: dict) -> 'StreamingOODMetric':
        """Add a :meth:`state_dict` into this accumulator."""
        if state['bits'] != self.bits:
            raise ValueError(f"state has bits={state['bits']}, this metric "
                             f'{self.bits}')
        np.add.at(self.counts.reshape(-1), state['index'], state['count'])
        for b, (index, count) in state.get('refined', {}).items():
            if b not in self.refined:  # merged in beyond max_refined too
                self._add_refined(b)
            np.add.at(self.refined[b].reshape(-1), index, count)
        return self

    def reset(self) -> None:
        self.counts[:] = 0
        self.refined = {}
        self._is_refined[:] = False

    def _distinct(self):
        """(values ascending, OOD counts, ID counts) over every occupied
        (sub-)bin; a refined bin's coarse counts join its fullest sub-bin."""
        counts = self.counts.copy()
        keys, pos, neg = [], [], []
        sub_size = 1 << (32 - self.bits)
        for b, f in self.refined.items():
            f = f.copy()
            # pixels counted before the bin was refined: known only to lie
            # in the bin; put them with its most frequent exact value
            f[:, int(np.argmax(f.sum(axis=0)))] += counts[:, b]
            counts[:, b] = 0
            used = np.flatnonzero(f.sum(axis=0))
            keys.append((np.uint64(b) * np.uint64(sub_size) +
                         used.astype(np.uint64)))
            neg.append(f[0, used])
            pos.append(f[1, used])
        used = np.flatnonzero(counts.sum(axis=0))
        keys.append(used.astype(np.uint64) << np.uint64(self._shift))
        neg.append(counts[0, used])
        pos.append(counts[1, used])
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
