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
    neg = (bits >> np.uint32(31)).astype(bool)
    return np.where(neg, ~bits, bits | np.uint32(0x80000000))


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
    range, no range to know in advance. Each bin keeps ID and OOD counts;
    the metrics are then computed exactly as for scores rounded down to
    their bin's lower edge (ties within a bin count one half for AUROC).

    Accuracy: the bins have relative width ``2^-(bits - 9)`` (``bits=20``:
    about 5e-4 of the score's magnitude); only ID/OOD pairs closer than that
    become ties. Exact ties in the data stay ties, as in sklearn.

    Memory: ``2 * 2^bits`` int64 counts, 16 MiB at ``bits=20``, whatever
    the number of pixels. ``merge`` adds counts, so results computed per
    worker and merged equal one worker's.

    Args:
        bits: Histogram resolution, 12 to 24.
        ignore_index: Void label, excluded.
        tpr_points: TPR levels for ``fpr@tpr<p>`` (0.95 always included).
        name: Scorer name, used in messages.

    Example:
        >>> m = StreamingOODMetric(name='energy')
        >>> for score_map, label_map in stream:
        ...     m.update(score_map, label_map)
        >>> m.compute()['auroc']
    """

    def __init__(self, bits: int = 20, ignore_index: int = 255,
                 tpr_points: Sequence[float] = (0.95, ),
                 name: str = 'scores'):
        if not isinstance(bits, int) or not 12 <= bits <= 24:
            raise ValueError(f'`bits` must be an int in [12, 24], got {bits!r}')
        for p in tpr_points:
            if not 0.0 < p <= 1.0:
                raise ValueError(f'`tpr_points` must be in (0, 1], got {p}')
        self.bits = bits
        self.ignore_index = ignore_index
        self.tpr_points = tuple(tpr_points)
        self.name = name
        self._shift = np.uint32(32 - bits)
        self.counts = np.zeros((2, 1 << bits), np.int64)  # [ID, OOD]

    @property
    def nbytes(self) -> int:
        """Accumulator memory in bytes."""
        return self.counts.nbytes

    def update(self, scores, labels) -> 'StreamingOODMetric':
        """Add one image (or batch): scores and 0/1/void labels of one shape.

        Raises:
            ValueError: shapes differ, unknown labels, NaN/Inf scores.
        """
        s, y = valid_scores_and_labels(scores, labels, self.ignore_index,
                                       self.name)
        if s.size == 0:
            return self
        idx = (_order_keys(s) >> self._shift).astype(np.int64)
        nbins = self.counts.shape[1]
        if s.size * 8 < nbins:
            # few pixels: sparse add beats a dense bincount over every bin
            flat, cnt = np.unique(idx + y.astype(np.int64) * nbins,
                                  return_counts=True)
            np.add.at(self.counts.reshape(-1), flat, cnt)
        else:
            self.counts += np.bincount(
                idx + y.astype(np.int64) * nbins,
                minlength=2 * nbins).reshape(2, nbins)
        return self

    def merge(self, other: 'StreamingOODMetric') -> 'StreamingOODMetric':
        """Add another accumulator's counts (same ``bits``) into this one."""
        if not isinstance(other, StreamingOODMetric) or \
                other.bits != self.bits:
            raise ValueError('can only merge a StreamingOODMetric with the '
                             f'same `bits` ({self.bits})')
        self.counts += other.counts
        return self

    def state_dict(self) -> dict:
        """Compact state: the nonzero bins only (for gathering across ranks)."""
        nz = np.flatnonzero(self.counts.reshape(-1))
        return dict(bits=self.bits, index=nz,
                    count=self.counts.reshape(-1)[nz])

    def load_state_dict(self, state: dict) -> 'StreamingOODMetric':
        """Add a :meth:`state_dict` into this accumulator."""
        if state['bits'] != self.bits:
            raise ValueError(f"state has bits={state['bits']}, this metric "
                             f'{self.bits}')
        np.add.at(self.counts.reshape(-1), state['index'], state['count'])
        return self

    def reset(self) -> None:
        self.counts[:] = 0

    def compute(self) -> Dict[str, float]:
        """AUROC, AP, FPR@95, best F1 and its threshold, FPR / threshold at
        each TPR point, and the ID / OOD pixel counts (see
        :func:`~mmseg_ood.evaluation.curves.curve_metrics`). Thresholds are
        bin lower edges."""
        used = np.flatnonzero(self.counts.sum(axis=0))
        values = _keys_to_values(
            used.astype(np.uint32) << self._shift).astype(np.float64)
        return curve_metrics(self.counts[1, used], self.counts[0, used],
                             values, self.tpr_points, self.name)
