"""Streaming statistics of a model's logit vectors: the SCrIBE paper's
representation analysis (sec. 4, "Inspection of Representation Structure",
Fig. 3 and 4).

Every pixel's logit vector ``v`` (``k`` components) is grouped by its
predicted class. Per class, the count, the sum of ``v`` and the sum of
``v v^T`` (float64) are all that is kept: no pixel is buffered, and states
add, so batches, workers and ranks merge exactly as one pass over the
concatenated vectors would (up to float64 rounding).

From them:

- the normalized auto-correlation matrix of a class (Fig. 3):
  ``R = E[v v^T]`` over the class's pixels, ``R_ij / sqrt(R_ii R_jj)``;
- the accumulated explained variance (Fig. 4): the eigenvalues of the
  covariance ``E[v v^T] - E[v] E[v]^T`` of all pixels, largest first, their
  running sum over their total;
- the effective dimensionality: the number of components that explain
  90 % / 95 % of the variance.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from ...errors import InvalidValueError
from ..functional.inputs import to_numpy
from .base import Accumulator

__all__ = ['RepresentationAccumulator', 'effective_dimensionality']


def effective_dimensionality(explained: np.ndarray, fraction: float) -> int:
    """The number of leading components whose accumulated explained variance
    reaches ``fraction``.

    Args:
        explained: Cumulative explained-variance ratios, ascending,
            ``(k,)`` float, the last entry 1.
        fraction: The share of the variance to explain, in ``(0, 1]``
            (e.g. ``0.9``).

    Returns:
        int: The smallest ``d`` with ``explained[d - 1] >= fraction`` (up
        to a rounding tolerance of ``1e-12``).

    Raises:
        ValueError: ``fraction`` outside ``(0, 1]``.
    """
    if not 0 < fraction <= 1:
        raise InvalidValueError(
            f'`fraction` must be in (0, 1], got {fraction!r}')
    # a tolerance for the last component's rounding (its sum is 1)
    return int(np.searchsorted(explained, fraction - 1e-12) + 1)


class RepresentationAccumulator(Accumulator):
    """First and second moments of logit vectors per predicted class.

    Memory: ``k * (k + 1) + 1`` float64 numbers per class.

    Args:
        num_classes: ``k``, the length of the logit vectors (and the number
            of classes they predict).
    """

    def __init__(self, num_classes: int):
        if isinstance(num_classes, bool) or not isinstance(
                num_classes, (int, np.integer)) or num_classes < 2:
            raise InvalidValueError('`num_classes` must be an int >= 2, got '
                                    f'{num_classes!r}')
        self.num_classes = int(num_classes)
        self.reset()

    def reset(self) -> None:
        k = self.num_classes
        self.count = np.zeros(k, np.int64)
        self.sum = np.zeros((k, k), np.float64)        # [class, component]
        self.outer = np.zeros((k, k, k), np.float64)   # [class, i, j]

    def update(self, logits) -> 'RepresentationAccumulator':
        """Add the pixels of ``logits`` ``(k, H, W)`` or ``(N, k, H, W)``,
        each under its argmax class."""
        v = torch.as_tensor(to_numpy(logits))
        if v.dim() == 3:
            v = v[None]
        if v.dim() != 4 or v.shape[1] != self.num_classes:
            raise InvalidValueError(
                f'logits must be ({self.num_classes}, H, W) or '
                f'(N, {self.num_classes}, H, W), got '
                f'{tuple(v.shape)}')
        v = v.double().permute(1, 0, 2, 3).reshape(self.num_classes, -1)
        if not torch.isfinite(v).all():
            raise InvalidValueError('logits contain NaN / Inf')
        pred = v.argmax(dim=0)
        for c in torch.unique(pred).tolist():
            vc = v[:, pred == c]                         # (k, n_c)
            self.count[c] += vc.shape[1]
            self.sum[c] += vc.sum(dim=1).numpy()
            self.outer[c] += (vc @ vc.T).numpy()
        return self

    def state_dict(self) -> dict:
        return dict(num_classes=self.num_classes, count=self.count.copy(),
                    sum=self.sum.copy(), outer=self.outer.copy())

    def load_state_dict(self, state: dict) -> 'RepresentationAccumulator':
        if state['num_classes'] != self.num_classes and not self.count.any():
            # an empty accumulator (a rank that saw no sample) takes the
            # length of the vectors it is given
            self.num_classes = int(state['num_classes'])
            self.reset()
        if state['num_classes'] != self.num_classes:
            raise InvalidValueError(f'cannot merge statistics of '
                                    f"{state['num_classes']} classes into "
                                    f'{self.num_classes}')
        self.count += state['count']
        self.sum += state['sum']
        self.outer += state['outer']
        return self

    def autocorrelation(self, cls: int) -> np.ndarray:
        """Fig. 3: the normalized auto-correlation matrix ``(k, k)`` of the
        logit vectors predicted as ``cls`` (NaN if none was)."""
        n = self.count[cls]
        if n == 0:
            return np.full((self.num_classes, ) * 2, np.nan)
        r = self.outer[cls] / n
        d = np.sqrt(np.diag(r))
        with np.errstate(invalid='ignore', divide='ignore'):
            return r / np.outer(d, d)

    def explained_variance(self) -> np.ndarray:
        """Fig. 4: the accumulated explained variance of the covariance's
        eigenvalues, largest first, over all pixels (``(k,)``, ending at
        1)."""
        n = self.count.sum()
        if n == 0:
            return np.full(self.num_classes, np.nan)
        mean = self.sum.sum(axis=0) / n
        cov = self.outer.sum(axis=0) / n - np.outer(mean, mean)
        eig = np.clip(np.linalg.eigvalsh((cov + cov.T) / 2)[::-1], 0, None)
        return np.cumsum(eig) / eig.sum()

    def compute(self) -> Dict[str, object]:
        ev = self.explained_variance()
        done = np.isfinite(ev).all()
        return dict(
            pixels=int(self.count.sum()),
            pixels_per_class=self.count.tolist(),
            explained_variance=ev.tolist(),
            dims_90=effective_dimensionality(ev, 0.90) if done else None,
            dims_95=effective_dimensionality(ev, 0.95) if done else None)


