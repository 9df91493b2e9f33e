"""Streaming statistics of ID embeddings, for the feature-space scorers.

The feature-space scorers (ReAct, DICE, ViM, Mahalanobis, relative
Mahalanobis, kNN) are fitted on in-distribution data. What each needs is a
fixed-size summary of the per-pixel embeddings ``z`` (the input of the
final 1x1 classifier) over a reference set, and :class:`FeatureStatistics`
streams all of them in one pass, in memory that does not grow with the
number of pixels:

- **class moments**: per predicted class ``c`` the pixel count ``n_c`` and
  the sum ``sum_{i in c} z_i`` (``C x D``), and the scatter ``sum_i z_i
  z_i^T`` over all pixels (``D x D``). They give the class means, the
  shared within-class covariance (Mahalanobis), the mean and covariance of
  all pixels (relative Mahalanobis) and the second moment about any origin
  (ViM): merging two chunks adds them. The sums are kept as float64 pairs
  ``hi + lo`` (compensated, "double-double" addition), so that their value
  does not depend on the order the images were added in, up to an error
  of about ``N 2^-106`` relative: the ranks of a distributed fit, merged
  in another order, give the same float64 sums as one process, and the
  scorers derived from them (ViM's subspace is sensitive to the last bits
  where two eigenvalues nearly tie) the same maps.
- **activation histogram**: the count of every embedding value (all ``D``
  values of every pixel) in ``2^20`` bins of the float32 order, each bin
  ``2^-11`` of its value wide (relative): the p-th percentile of ID
  activations (ReAct) to that resolution.
- **embedding bank**: a uniform sample without replacement of ``M`` pixel
  embeddings (kNN; ViM's scale ``alpha``). Each embedding gets a 64-bit
  hash of its float32 bits, and the bank keeps the ``M`` smallest hashes
  (bottom-``M`` sampling): the sample does not depend on the order of the
  pixels, on the batching or on how the pixels are split across ranks, so
  a merged bank equals the bank of one pass, and the ``M' < M`` smallest
  hashes of a bank are the bank of size ``M'``. It is a sample of the
  *distinct* embeddings: copies of one embedding (a constant region, an
  all-zero ReLU output) share a hash and enter once, so they cannot fill
  the bank.

Pixels are assigned to classes by the model's prediction (the argmax of
the head's logits), as SML assigns them (Jung et al. 2021): per pixel, the
label of a head-resolution pixel is not defined under slide inference, and
a post-hoc method should not need labels. Lee et al. (2018) use the
training labels; on ID data predicted and true classes agree wherever the
model is right (the deviation is named in each scorer's docstring).

Memory: ``16 (C D + D^2) + 8 C`` bytes for the moments (compensated
pairs), 8 MiB for the histogram and ``M (4 D + 8)`` bytes for the bank,
plus the temporaries of :data:`CHUNK` pixels while they are added
(``benchmarks/feature_fit_memory.py``).
"""
from __future__ import annotations

import json
from typing import Optional

import numpy as np

from ...errors import DamagedFileError, InvalidValueError, MissingInputError

__all__ = ['FeatureStatistics', 'StatisticsSpec', 'embedding_hash',
           'HISTOGRAM_BITS']

#: Bins of the activation histogram: the top bits of the order-preserving
#: integer of a float32 (sign, 8 exponent bits, 11 mantissa bits).
HISTOGRAM_BITS = 20
_SHIFT = 32 - HISTOGRAM_BITS

#: Pixels added at a time (the temporaries of an update are a few times
#: ``CHUNK x D`` float64).
CHUNK = 4096

#: The arrays of a summary (``None`` where its spec does not collect them).
ARRAYS = ('class_count', 'class_sum', 'class_sum_low', 'scatter',
          'scatter_low', 'histogram', 'bank_keys', 'bank')

#: The format of the saved file.
FORMAT = 'mmseg_ood.feature_statistics/1'


class StatisticsSpec(dict):
    """What a fit collects; specs combine with ``|`` (both flags or-ed, the
    larger bank).

    Args:
        moments: Class counts and sums, and the scatter matrix.
        histogram: The activation histogram.
        bank_size: Pixels in the embedding bank (0: no bank).
    """

    def __init__(self, moments: bool = False, histogram: bool = False,
                 bank_size: int = 0):
        if isinstance(bank_size, bool) or not isinstance(bank_size, int) \
                or bank_size < 0:
            raise InvalidValueError(
                f'`bank_size` must be an int >= 0, got {bank_size!r}')
        super().__init__(moments=bool(moments), histogram=bool(histogram),
                         bank_size=int(bank_size))

    def __or__(self, other: 'StatisticsSpec') -> 'StatisticsSpec':
        return StatisticsSpec(self['moments'] or other['moments'],
                              self['histogram'] or other['histogram'],
                              max(self['bank_size'], other['bank_size']))

    @classmethod
    def union(cls, scorers) -> 'StatisticsSpec':
        """What a fit must collect for all of ``scorers`` (those without
        ``statistics_spec``, i.e. not fitted on embeddings, add nothing).

        Args:
            scorers: Scorer instances.
        """
        spec = cls()
        for scorer in scorers:
            if hasattr(scorer, 'statistics_spec'):
                spec = spec | scorer.statistics_spec()
        return spec

    def covers(self, other: 'StatisticsSpec') -> bool:
        """Whether statistics collected for this spec serve ``other``."""
        return (self['moments'] or not other['moments']) and \
            (self['histogram'] or not other['histogram']) and \
            self['bank_size'] >= other['bank_size']


def _add_compensated(hi: np.ndarray, lo: np.ndarray, value) -> None:
    """``hi + lo += value`` in place, the rounding error of ``hi + value``
    kept in ``lo`` (Knuth's TwoSum)."""
    total = hi + value
    virtual = total - hi
    error = (hi - (total - virtual)) + (value - virtual)
    hi[...] = total
    lo += error


def _order_keys(values: np.ndarray) -> np.ndarray:
    """float32 -> uint32 whose unsigned order is the float order (-0.0
    just below +0.0)."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    negative = (bits >> 31).astype(bool)
    return np.where(negative, ~bits, bits | np.uint32(0x80000000))


def _key_values(keys: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_order_keys`."""
    keys = np.asarray(keys, np.uint32)
    positive = (keys >> 31).astype(bool)
    bits = np.where(positive, keys & np.uint32(0x7FFFFFFF), ~keys)
    return bits.view(np.float32)


def embedding_hash(embeddings: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's float32 bits (FNV-1a over the ``D``
    words, then the splitmix64 finalizer): ``(P, D) -> (P,)`` uint64.

    Equal rows hash equally; the hash of a row does not depend on the
    other rows, so a bank's sample is the same in any batching.

    Args:
        embeddings: ``(P, D)``, cast to float32.
    """
    words = np.ascontiguousarray(embeddings, np.float32).view(np.uint32)
    h = np.full(len(words), 0xcbf29ce484222325, np.uint64)
    prime = np.uint64(0x100000001b3)
    with np.errstate(over='ignore'):
        for d in range(words.shape[1]):
            h ^= words[:, d].astype(np.uint64)
            h *= prime
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xbf58476d1ce4e5b9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94d049bb133111eb)
        h ^= h >> np.uint64(31)
    return h


class FeatureStatistics:
    """The streamed summary of ID embeddings (see the module docstring).

    Follows the accumulator protocol of :mod:`mmseg_ood.evaluation`:
    :meth:`update` / :meth:`partial_fit` add pixels, :meth:`state_dict` and
    :meth:`load_state_dict` (which **adds**) merge chunks and ranks,
    :meth:`empty_like` copies the parameters.

    Args:
        spec: What to collect (:class:`StatisticsSpec`, or its keywords as
            a dict).
        num_classes: C; default: from the first update.
        dim: D; default: from the first update.
    """

    def __init__(self, spec: Optional[dict] = None,
                 num_classes: Optional[int] = None,
                 dim: Optional[int] = None):
        self.spec = StatisticsSpec(**(spec or {}))
        if not any((self.spec['moments'], self.spec['histogram'],
                    self.spec['bank_size'])):
            raise InvalidValueError(
                'feature statistics: the spec collects nothing (moments, '
                'histogram and bank_size all off)')
        self.num_classes = num_classes
        self.dim = dim
        self.reset()

    def reset(self) -> None:
        """Forget every pixel."""
        self.pixels = 0
        self.class_count = self.class_sum = self.scatter = None
        self.class_sum_low = self.scatter_low = None
        self.histogram = None
        self.bank_keys = self.bank = None
        if self.num_classes is not None and self.dim is not None:
            self._allocate(self.num_classes, self.dim)

    def _allocate(self, num_classes: int, dim: int) -> None:
        self.num_classes, self.dim = num_classes, dim
        if self.spec['moments']:
            self.class_count = np.zeros(num_classes, np.float64)
            self.class_sum = np.zeros((num_classes, dim), np.float64)
            self.scatter = np.zeros((dim, dim), np.float64)
            self.class_sum_low = np.zeros_like(self.class_sum)
            self.scatter_low = np.zeros_like(self.scatter)
        if self.spec['histogram']:
            self.histogram = np.zeros(1 << HISTOGRAM_BITS, np.float64)
        if self.spec['bank_size']:
            self.bank_keys = np.zeros(0, np.uint64)
            self.bank = np.zeros((0, dim), np.float32)

    def empty_like(self) -> 'FeatureStatistics':
        """An empty summary with the same spec and shape."""
        return FeatureStatistics(dict(self.spec), self.num_classes, self.dim)

    # adding ----------------------------------------------------------------
    def update(self, embeddings, labels) -> 'FeatureStatistics':
        """Add pixels.

        Args:
            embeddings: ``(P, D)`` float (array or tensor).
            labels: ``(P,)`` class index of each pixel, in ``[0, C)``
                (``C`` given at construction or taken from ``labels``'
                maximum + 1 on the first update; pass ``num_classes`` when
                a chunk may lack the last class).

        Raises:
            ValueError: other shapes, a class out of range, or a
                non-finite embedding.
        """
        z = _numpy(embeddings).astype(np.float32, copy=False)
        y = _numpy(labels).astype(np.int64, copy=False).reshape(-1)
        if z.ndim != 2 or len(z) != len(y):
            raise InvalidValueError(
                f'feature statistics: embeddings {z.shape} and labels '
                f'{y.shape} must be (P, D) and (P,)')
        if not len(z):
            return self
        if self.dim is None or (self.class_count is None and self.histogram
                                is None and self.bank is None):
            self._allocate(self.num_classes or int(y.max()) + 1, z.shape[1])
        if z.shape[1] != self.dim:
            raise InvalidValueError(
                f'feature statistics of D={self.dim} dimensions cannot take '
                f'embeddings of D={z.shape[1]}')
        if y.min() < 0 or y.max() >= self.num_classes:
            raise InvalidValueError(
                f'feature statistics: class indices must be in [0, '
                f'{self.num_classes}), got {int(y.min())}..{int(y.max())}')
        if not np.isfinite(z).all():
            raise InvalidValueError('feature statistics: NaN or Inf '
                                    'embeddings')
        self.pixels += len(z)
        # in slices of CHUNK pixels: the temporaries stay small
        for start in range(0, len(z), CHUNK):
            self._add(z[start:start + CHUNK], y[start:start + CHUNK])
        return self

    def _add(self, z: np.ndarray, y: np.ndarray) -> None:
        if self.class_count is not None:
            z64 = z.astype(np.float64)
            self.class_count += np.bincount(y, minlength=self.num_classes)
            onehot = np.zeros((self.num_classes, len(y)))
            onehot[y, np.arange(len(y))] = 1.0
            _add_compensated(self.class_sum, self.class_sum_low,
                             onehot @ z64)
            _add_compensated(self.scatter, self.scatter_low, z64.T @ z64)
        if self.histogram is not None:
            bins = _order_keys(z.reshape(-1)) >> np.uint32(_SHIFT)
            self.histogram += np.bincount(bins, minlength=len(self.histogram))
        if self.bank is not None:
            self._add_to_bank(embedding_hash(z), z)

    def partial_fit(self, inputs) -> 'FeatureStatistics':
        """Add the pixels of one captured forward pass
        (:class:`~mmseg_ood.scorers.ScoreInputs` with ``embeddings``),
        each assigned to its predicted class (the argmax of ``logits``)."""
        if inputs.embeddings is None:
            raise InvalidValueError(
                'feature statistics need the embeddings of a head with a '
                'final linear classifier; none were captured')
        z = inputs.embeddings.detach()
        labels = inputs.logits.detach().argmax(dim=1)
        if self.num_classes is None:
            self.num_classes = inputs.logits.shape[1]
        flat = z.movedim(1, -1).reshape(-1, z.shape[1])
        return self.update(flat.float().cpu(), labels.reshape(-1).cpu())

    def _add_to_bank(self, keys: np.ndarray, z: np.ndarray) -> None:
        size = self.spec['bank_size']
        if len(self.bank_keys) >= size:
            keep = keys < self.bank_keys[-1]  # the bank is sorted by key
            keys, z = keys[keep], z[keep]
            if not len(keys):
                return
        keys = np.concatenate([self.bank_keys, keys])
        z = np.concatenate([self.bank, z])
        # one entry per distinct embedding (equal keys: equal embeddings),
        # the smallest keys first
        keys, first = np.unique(keys, return_index=True)
        self.bank_keys, self.bank = keys[:size], z[first[:size]]

    # merging ---------------------------------------------------------------
    def state_dict(self) -> dict:
        """The statistics as numpy arrays and numbers (copies)."""
        state = dict(spec=dict(self.spec), num_classes=self.num_classes,
                     dim=self.dim, pixels=self.pixels)
        for key in ARRAYS:
            value = getattr(self, key)
            state[key] = None if value is None else value.copy()
        return state

    def load_state_dict(self, state: dict) -> 'FeatureStatistics':
        """Add another summary's :meth:`state_dict` (another chunk's or
        rank's); the result is the summary of the union of their pixels."""
        if not state.get('pixels'):
            return self
        if StatisticsSpec(**state['spec']) != self.spec:
            raise InvalidValueError(
                f"feature statistics of spec {state['spec']} cannot be "
                f'merged into {dict(self.spec)}')
        if self.dim is None or self.pixels == 0 and self.class_count is None \
                and self.histogram is None and self.bank is None:
            self._allocate(int(state['num_classes']), int(state['dim']))
        if (state['num_classes'], state['dim']) != (self.num_classes,
                                                    self.dim):
            raise InvalidValueError(
                f"feature statistics of {state['num_classes']} classes x "
                f"D={state['dim']} cannot be merged into "
                f'{self.num_classes} x D={self.dim}')
        self.pixels += int(state['pixels'])
        if self.class_count is not None:
            self.class_count += state['class_count']
            for key in ('class_sum', 'scatter'):
                low = getattr(self, key + '_low')
                _add_compensated(getattr(self, key), low, state[key])
                low += state[key + '_low']
        if self.histogram is not None:
            self.histogram += state['histogram']
        if self.bank is not None:
            self._add_to_bank(np.asarray(state['bank_keys'], np.uint64),
                              np.asarray(state['bank'], np.float32))
        return self

    def merge(self, other: 'FeatureStatistics') -> 'FeatureStatistics':
        """Add ``other``'s pixels."""
        return self.load_state_dict(other.state_dict())

    # derived quantities ----------------------------------------------------
    def _need(self, what: str, key: str) -> np.ndarray:
        if not self.pixels:
            raise RuntimeError('feature statistics: no pixels were added')
        value = getattr(self, key)
        if value is None:
            raise InvalidValueError(
                f'these feature statistics were collected without {what} '
                f'(spec {dict(self.spec)}); fit them again')
        return value

    def _sums(self) -> np.ndarray:
        """The per-class sums, ``hi + lo`` rounded to float64."""
        return self._need('moments', 'class_sum') + self.class_sum_low

    def _scatter(self) -> np.ndarray:
        return self._need('moments', 'scatter') + self.scatter_low

    def mean(self) -> np.ndarray:
        """Mean embedding of all pixels, ``(D,)``."""
        return self._sums().sum(0) / self.pixels

    def class_means(self) -> np.ndarray:
        """Per-class means ``mu_c``, ``(C, D)``; NaN rows for classes never
        predicted."""
        count = self._need('moments', 'class_count')
        with np.errstate(invalid='ignore', divide='ignore'):
            return self._sums() / count[:, None]

    def second_moment(self, origin: Optional[np.ndarray] = None
                      ) -> np.ndarray:
        """``(1/N) sum_i (z_i - u)(z_i - u)^T`` about ``origin`` ``u``
        (default 0), ``(D, D)``."""
        scatter = self._scatter() / self.pixels
        if origin is None:
            return scatter
        u = np.asarray(origin, np.float64)
        m = self.mean()
        return scatter - np.outer(u, m) - np.outer(m, u) + np.outer(u, u)

    def covariance(self) -> np.ndarray:
        """Covariance of all pixels, ``(1/N) sum_i (z_i - mu)(z_i - mu)^T``
        (the maximum-likelihood estimate, as sklearn's
        ``EmpiricalCovariance``)."""
        return self.second_moment(self.mean())

    def within_class_covariance(self) -> np.ndarray:
        """The shared covariance of Lee et al. (2018), eq. (1):
        ``(1/N) sum_c sum_{i in c} (z_i - mu_c)(z_i - mu_c)^T``."""
        count = self._need('moments', 'class_count')
        scatter = self._scatter()
        seen = count > 0
        sums = self._sums()[seen]
        scatter -= (sums / count[seen, None]).T @ sums
        return scatter / self.pixels

    def activation_percentile(self, percent: float) -> float:
        """The ``percent``-th percentile of all ID activations (every value
        of every embedding), to ``2^-11`` of its value: the mid-point of
        the histogram bin holding the rank ``percent/100 (n - 1)``, as
        ``numpy.percentile``'s linear rule places it."""
        hist = self._need('the activation histogram', 'histogram')
        if not 0.0 <= percent <= 100.0:
            raise InvalidValueError(
                f'`percentile` must be in [0, 100], got {percent!r}')
        total = hist.sum()
        rank = percent / 100.0 * (total - 1)
        cumulative = np.cumsum(hist)
        b = int(np.searchsorted(cumulative, rank, side='right'))
        b = min(b, len(hist) - 1)
        low = _key_values(np.uint32(b << _SHIFT))
        high = _key_values(np.uint32(((b + 1) << _SHIFT) - 1))
        return float((np.float64(low) + np.float64(high)) / 2)

    def bank_sample(self, size: Optional[int] = None) -> np.ndarray:
        """The bank's ``size`` embeddings with the smallest hashes (all by
        default): a uniform sample of the ID pixels, ``(M, D)`` float32."""
        bank = self._need('an embedding bank', 'bank')
        if size is not None and size > len(bank) and \
                len(bank) == self.spec['bank_size']:
            raise InvalidValueError(
                f'the embedding bank holds {len(bank)} pixels; {size} '
                'were asked for (fit with a larger bank_size)')
        return bank if size is None else bank[:size]

    # persistence -----------------------------------------------------------
    def save(self, path: str, meta: Optional[dict] = None) -> None:
        """Write a ``.npz`` (no pickles: arrays and one JSON header),
        atomically."""
        from ...utils.files import atomic_output
        header = dict(format=FORMAT, spec=dict(self.spec),
                      num_classes=self.num_classes, dim=self.dim,
                      pixels=self.pixels, meta=meta or {})
        arrays = {k: getattr(self, k) for k in ARRAYS
                  if getattr(self, k) is not None}
        with atomic_output(path) as tmp, open(tmp, 'wb') as f:
            # a file object: numpy adds no '.npz' to the name
            np.savez_compressed(f, header=np.array(json.dumps(header)),
                                **arrays)

    @classmethod
    def load(cls, path: str) -> 'FeatureStatistics':
        """Read a file written by :meth:`save`; its ``meta`` becomes the
        attribute :attr:`meta`."""
        import os.path as osp
        if not osp.isfile(path):
            raise MissingInputError(f'feature statistics file not found: '
                                    f'{path}')
        not_ours = (f'{path}: not a feature statistics file written by '
                    'mmseg_ood')
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError('a single array, not an .npz archive')
            with data:
                header = json.loads(str(data['header']))
                arrays = {k: data[k] for k in data.files if k != 'header'}
            if not isinstance(header, dict):
                raise ValueError('its header is not a JSON object')
            if header.get('format') != FORMAT:
                raise ValueError(f'format {header.get("format")!r}, '
                                 f'expected {FORMAT!r}')
            stats = cls(header['spec'], header['num_classes'],
                        header['dim'])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DamagedFileError(f'{not_ours} ({e})') from None
        stats.pixels = int(header['pixels'])
        for key, value in arrays.items():
            expected = getattr(stats, key)
            if expected is None or (key != 'bank' and key != 'bank_keys'
                                    and value.shape != expected.shape):
                raise DamagedFileError(
                    f'{path}: array {key!r} of shape {value.shape} does not '
                    f'fit the header (spec {header["spec"]}, '
                    f'{header["num_classes"]} classes, D={header["dim"]})')
            setattr(stats, key, value)
        missing = [k for k in ARRAYS
                   if getattr(stats, k) is not None and k not in arrays]
        if missing:
            raise DamagedFileError(f'{path}: arrays {missing} are missing')
        if stats.bank is not None:
            keys, bank = stats.bank_keys, stats.bank
            increasing = keys.ndim == 1 and (
                len(keys) < 2 or bool((keys[1:] > keys[:-1]).all()))
            if not increasing or bank.shape != (len(keys), stats.dim) or \
                    len(keys) > stats.spec['bank_size']:
                raise DamagedFileError(
                    f'{path}: the embedding bank ({bank.shape}, '
                    f'{keys.shape} keys) does not fit D={stats.dim} and '
                    f"bank_size={stats.spec['bank_size']}, or its keys are "
                    'not increasing')
            stats.bank_keys = keys.astype(np.uint64)
            stats.bank = bank.astype(np.float32)
        stats.meta = header.get('meta') or {}
        return stats

    def __repr__(self) -> str:
        return (f'FeatureStatistics(spec={dict(self.spec)}, '
                f'pixels={self.pixels}, classes={self.num_classes}, '
                f'dim={self.dim})')


def _numpy(x) -> np.ndarray:
    if hasattr(x, 'detach'):
        return x.detach().cpu().numpy()
    return np.asarray(x)
