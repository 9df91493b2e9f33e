"""Bootstrap confidence intervals of the pooled pixel metrics, images
resampled.

Pixels of one image are strongly correlated (one object, one scene, one
model mistake), so the sampling unit of an OOD dataset is the image, not
the pixel: an interval over pixels would be far too narrow. A resample
draws the dataset's ``n`` images with replacement, image ``i`` ``w_i``
times (``w ~ Multinomial(n, 1/n, ..., 1/n)``), and pools its pixels as
the metric does; AUROC, AP and FPR95 of each of ``R`` resamples give the
percentile interval ``[q_{(1 - level) / 2}, q_{(1 + level) / 2}]``
(``np.percentile``, linear interpolation; Efron & Tibshirani, "An
Introduction to the Bootstrap", 1993, ch. 13). The definitions are those
of :mod:`~mmseg_ood.evaluation.functional.roc_pr` (step-wise AP as sklearn's
``average_precision_score``, OOD positive; FPR95 at the first threshold
with TPR >= 0.95).

**Bounded memory.** A resample is a weighted sum of per-image histograms:
each image keeps, per scorer, its ID and OOD pixel counts in ``B`` bins
shared by all images (:class:`ImageHistograms`, ``8 B`` bytes an image and
scorer: 8 KiB at the default ``B = 1024``; 50 images and 7 scorers take
2.8 MiB, 2000 images 110 MiB), and ``R`` resamples are ``R x n`` weights
times ``n x 2B`` counts, in chunks of :data:`CHUNK` resamples.

**Bins.** The ``B`` bins are quantile bins of the dataset's pooled score
histogram (:func:`bootstrap_knots`, the knots of
:func:`~mmseg_ood.evaluation.accumulators.score_transform.float16_knots`): half
of them
on equal shares of the pixels, half on equal steps of ``log(1 - F)``, ever
finer towards the highest scores, where AP and the 95 %-TPR threshold are
decided; with at most ``B`` distinct histogram values every value is its
own bin and nothing is lost. Equal-width or ``2^-7``-relative bins would
put a scorer whose values span a few percent of their magnitude
(``n_energy``) into a handful of bins; quantile bins do not depend on the
range. A bin holds at most ``2 N / B`` of the ``N`` pixels, and far fewer
of the highest-scoring ones.

**Error of the binning** against the exact pooled metrics (tested,
``tests/evaluation/test_bootstrap.py``): with per-bin OOD / ID counts ``p_b,
n_b``,
totals ``P, N``, and ``TP_b, FP_b`` the counts above bin ``b``,

- AUROC: ``|d| <= sum_b p_b n_b / (2 P N)`` (pairs within a bin count
  one half);
- FPR95: ``|d| <= n_c / N``, ``c`` the bin where TPR reaches 0.95;
- AP: ``|d| <= sum_b (p_b / P) (hi_b - lo_b)``, ``hi_b = (TP_b + p_b) /
  (TP_b + p_b + FP_b)``, ``lo_b = (TP_b + 1) / (TP_b + 1 + FP_b + n_b)``
  (every precision inside the bin lies between them).

A percentile of ``R`` values each within ``e`` of the exact ones is within
``e`` of the exact percentile, so the interval ends are within the largest
resample's bound. Measured on 50 images of 32768 pixels with continuous
scores (OOD 0-4.6 % of an image, per-image offsets; exact metrics by
:func:`~mmseg_ood.evaluation.pixel_ood_metrics`), the full-sample binned
metrics differed from the exact ones by

=====  ========  =========  ========
bins   AP        AUROC      FPR95
=====  ========  =========  ========
256    -4.6e-3   -1.2e-5    +1.7e-3
1024   -1.2e-3   -2.9e-6    +1.7e-3
4096   -3.0e-4   -5.5e-7    +3.8e-4
=====  ========  =========  ========

(the same for scores squeezed into 0.2 % of their magnitude), while the
95 % interval of AP was 7.8e-2 wide. ``B = 1024`` keeps the binning under
1/20 of such an interval at 8 KiB an image; 4096 bins cost 4x the memory
and 7x the time (0.35 s for 1000 resamples of a scorer). Each dataset's
full-sample binned metrics minus the reported ones are recorded
(``bin_error``), so a run shows its own binning error.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ...errors import InvalidTypeError, InvalidValueError
from .base import Accumulator
from .pixel import PixelOODAccumulator
from .score_transform import Float16RankTransform, float16_knots

__all__ = ['check_bootstrap', 'bootstrap_knots', 'ImageHistograms',
           'binned_curve_metrics', 'image_bootstrap', 'BOOTSTRAP_KEYS',
           'DEFAULT_BINS', 'MAX_BINS', 'CHUNK']

#: The metrics that get an interval (result key ``<metric>_ci``).
BOOTSTRAP_KEYS = ('auroc', 'ap', 'fpr95')
#: Bins of the per-image histograms unless ``bins`` says otherwise.
DEFAULT_BINS = 1024
#: Most bins (the knot lookup of :class:`Float16RankTransform`).
MAX_BINS = 15360
#: Resamples computed at once: ``CHUNK x 2B`` float64 temporaries (4 MiB
#: each at ``B = 1024``).
CHUNK = 256
_DEFAULTS = dict(samples=None, seed=0, level=0.95, bins=DEFAULT_BINS)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_bootstrap(bootstrap: Optional[dict]) -> Optional[dict]:
    """Validate a ``bootstrap`` argument; fill its defaults.

    Args:
        bootstrap: ``None`` (off) or ``dict(samples=R, seed=0, level=0.95,
            bins=1024)``: ``samples`` (required) an int >= 1, ``seed`` an
            int >= 0, ``level`` in (0, 1), ``bins`` an int in [2, 15360].

    Returns:
        The dict with every key, or ``None``.

    Raises:
        TypeError: not a dict.
        ValueError: an unknown key or a value out of range (naming both).
    """
    if bootstrap is None:
        return None
    if not isinstance(bootstrap, dict):
        raise InvalidTypeError('`bootstrap` must be a dict(samples=N, seed=S, '
                               f'level=L, bins=B) or None, got {bootstrap!r}')
    unknown = sorted(set(bootstrap) - set(_DEFAULTS))
    if unknown:
        raise InvalidValueError(
            f'`bootstrap` has unknown keys {unknown}; it takes '
            f'{", ".join(_DEFAULTS)}')
    out = {**_DEFAULTS, **bootstrap}
    if not _is_int(out['samples']) or out['samples'] < 1:
        raise InvalidValueError('`bootstrap` samples must be an int >= 1, got '
                                f'{out["samples"]!r}')
    if not _is_int(out['seed']) or out['seed'] < 0:
        raise InvalidValueError('`bootstrap` seed must be an int >= 0, got '
                                f'{out["seed"]!r}')
    level = out['level']
    if isinstance(level, bool) or not isinstance(
            level, (int, float, np.floating)) or not 0.0 < level < 1.0:
        raise InvalidValueError('`bootstrap` level must be in (0, 1), got '
                                f'{level!r}')
    if not _is_int(out['bins']) or not 2 <= out['bins'] <= MAX_BINS:
        raise InvalidValueError(
            f'`bootstrap` bins must be an int in [2, {MAX_BINS}]'
            f', got {out["bins"]!r}')
    return dict(samples=int(out['samples']), seed=int(out['seed']),
                level=float(level), bins=int(out['bins']))


def bootstrap_knots(histogram: PixelOODAccumulator, bins: int) -> np.ndarray:
    """Knots of at most ``bins`` quantile bins of a pooled histogram.

    Args:
        histogram: The dataset's pooled scores (every rank's, merged: the
            same knots on every rank).
        bins: Most bins.

    Returns:
        float32 ``(K,)`` strictly increasing, ``K < bins``: a score ``s``
        is in bin ``#{k : knots[k] <= s}`` (0 to ``K``).
    """
    values, pos, neg = histogram.counts_by_value()
    return float16_knots(values, pos + neg, bins)


class ImageHistograms(Accumulator):
    """Each image's ID and OOD pixel counts in the bins of ``knots``, for
    one scorer; merging concatenates images.

    Memory: ``8 (K + 1)`` bytes an image (int32 counts).

    Args:
        knots: Strictly increasing float32 knots
            (:func:`bootstrap_knots`); states merge only with equal knots.
    """

    def __init__(self, knots):
        self.knots = np.asarray(knots, np.float32).reshape(-1)
        # c(s) = #{knots <= s} through the transform's lookup table
        self._codes = Float16RankTransform(self.knots).codes
        self.reset()

    @property
    def bins(self) -> int:
        """Number of bins, ``K + 1``."""
        return self.knots.size + 1

    def reset(self) -> None:
        self.images: List[str] = []
        self._counts: List[np.ndarray] = []

    def update(self, image, scores, labels) -> 'ImageHistograms':
        """Add one image.

        Args:
            image: Its name (images are ordered by name in :meth:`compute`).
            scores: Float scores of any shape, finite wherever ``labels``
                is 0 or 1.
            labels: Same size: 0 ID, 1 OOD; anything else is left out.
        """
        s = np.asarray(scores, np.float32).reshape(-1)
        y = np.asarray(labels).reshape(-1)
        valid = y <= 1
        if not valid.all():
            s, y = s[valid], y[valid]
        idx = self._codes(s) * 2 + y.astype(np.intp)
        counts = np.bincount(idx, minlength=2 * self.bins)
        self.images.append(str(image))
        self._counts.append(counts.reshape(self.bins, 2).T.astype(np.int32))
        return self

    def state_dict(self) -> dict:
        return dict(knots=self.knots, images=list(self.images),
                    counts=self._stacked())

    def load_state_dict(self, state: dict) -> 'ImageHistograms':
        """Append another accumulator's images.

        Raises:
            ValueError: its knots differ from these.
        """
        knots = np.asarray(state['knots'], np.float32)
        if not np.array_equal(knots, self.knots):
            raise InvalidValueError(
                'ImageHistograms: cannot merge histograms of '
                f'other knots ({knots.size} vs '
                f'{self.knots.size})')
        self.images += list(state['images'])
        self._counts += list(np.asarray(state['counts'], np.int32))
        return self

    def _stacked(self) -> np.ndarray:
        if not self._counts:
            return np.zeros((0, 2, self.bins), np.int32)
        return np.stack(self._counts)

    def compute(self) -> dict:
        """``images`` (names, sorted: the same order whatever the ranks)
        and their ``counts`` ``(n, 2, K + 1)`` int32 [ID, OOD]."""
        order = sorted(range(len(self.images)), key=self.images.__getitem__)
        return dict(images=[self.images[i] for i in order],
                    counts=self._stacked()[order])


def binned_curve_metrics(pos: np.ndarray, neg: np.ndarray
                         ) -> Dict[str, np.ndarray]:
    """AUROC, AP and FPR95 of many binned histograms at once.

    The definitions of
    :func:`~mmseg_ood.evaluation.functional.roc_pr.curve_metrics`
    (thresholds at the bins' lower edges, descending; a bin's pixels tie).

    Args:
        pos: ``(R, B)`` OOD counts per bin, bins in ascending score order.
        neg: ``(R, B)`` ID counts.

    Returns:
        dict of ``(R,)`` float64 arrays ``auroc``, ``ap``, ``fpr95``; NaN
        in the rows without OOD or without ID pixels.
    """
    pos = np.asarray(pos, np.float64)[:, ::-1]
    neg = np.asarray(neg, np.float64)[:, ::-1]
    rows = pos.shape[0]
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    n_pos, n_neg = tp[:, -1:], fp[:, -1:]
    ok = (n_pos[:, 0] > 0) & (n_neg[:, 0] > 0)
    zero = np.zeros((rows, 1))
    with np.errstate(invalid='ignore', divide='ignore'):
        tpr, fpr = tp / n_pos, fp / n_neg
        tpr0 = np.concatenate([zero, tpr], axis=1)
        fpr0 = np.concatenate([zero, fpr], axis=1)
        auroc = np.sum(np.diff(fpr0, axis=1) *
                       (tpr0[:, 1:] + tpr0[:, :-1]) / 2, axis=1)
        # a bin without OOD pixels adds no recall (and, before the first
        # pixel, has no precision)
        gain = np.where(pos > 0, np.diff(tpr0, axis=1) * tp / (tp + fp), 0.0)
        ap = gain.sum(axis=1)
        # tpr ends at 1 where defined: the first bin with tpr >= 0.95
        fpr95 = fpr[np.arange(rows), np.argmax(tpr >= 0.95, axis=1)]
    out = dict(auroc=auroc, ap=ap, fpr95=fpr95)
    for v in out.values():
        v[~ok] = np.nan
    return out


def image_bootstrap(counts: np.ndarray, samples: int, seed: int = 0,
                    level: float = 0.95, chunk: int = CHUNK) -> dict:
    """Percentile bootstrap intervals of AUROC, AP and FPR95, images
    resampled with replacement.

    Resample ``r`` weights image ``i`` by ``w[r, i]``, the rows of
    ``np.random.default_rng(seed).multinomial(n, [1/n] * n, size=samples)``
    (drawn in chunks of ``chunk`` rows: the same numbers): the same seed
    and number of images give the same resamples, so intervals of several
    scorers on one dataset are paired.

    Args:
        counts: ``(n, 2, B)`` per-image [ID, OOD] counts per bin
            (:meth:`ImageHistograms.compute`).
        samples: ``R``, the number of resamples.
        seed: Seed of the resampling.
        level: Coverage of the interval, in (0, 1).
        chunk: Resamples computed at once.

    Returns:
        dict: ``<metric>_ci`` = ``[low, high]`` for each of
        :data:`BOOTSTRAP_KEYS` (NaN where no resample is defined);
        ``undefined``, the resamples without OOD or ID pixels (left out of
        the percentiles); ``binned``, the metrics of all images once (every
        weight 1) in these bins; ``images``, ``n``.
    """
    counts = np.asarray(counts)
    n = counts.shape[0]
    flat = counts.reshape(n, -1).astype(np.float64)
    bins = counts.shape[2]
    values = {k: [] for k in BOOTSTRAP_KEYS}
    if n:
        rng = np.random.default_rng(seed)
        p = np.full(n, 1.0 / n)
        for start in range(0, samples, chunk):
            w = rng.multinomial(n, p, size=min(chunk, samples - start))
            # integer sums below 2^53: exact in float64 whatever the BLAS
            summed = w.astype(np.float64) @ flat
            got = binned_curve_metrics(summed[:, bins:], summed[:, :bins])
            for k in BOOTSTRAP_KEYS:
                values[k].append(got[k])
    total = flat.sum(axis=0)[None]
    whole = binned_curve_metrics(total[:, bins:], total[:, :bins])
    out = dict(images=n, binned={k: float(whole[k][0])
                                 for k in BOOTSTRAP_KEYS})
    q = [50.0 * (1.0 - level), 50.0 * (1.0 + level)]
    undefined = samples
    for k in BOOTSTRAP_KEYS:
        v = np.concatenate(values[k]) if values[k] else np.zeros(0)
        v = v[~np.isnan(v)]
        undefined = samples - v.size
        out[f'{k}_ci'] = [float(x) for x in np.percentile(v, q)] \
            if v.size else [float('nan'), float('nan')]
    out['undefined'] = int(undefined)
    return out
