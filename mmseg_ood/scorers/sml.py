"""Standardized max logit (SML)."""
from __future__ import annotations

import json
import os.path as osp
import warnings
from typing import Iterable, Optional

import numpy as np
import torch
from torch import Tensor

from .base import OOD_SCORERS, BaseScorer, ScoreInputs, check_number


class ClassStatistics:
    """Per-class count, mean and sum of squared deviations, merged exactly.

    Chan et al.'s pairwise update: merging the statistics of two chunks
    gives the statistics of their union, so streaming over batches equals
    one pass over the concatenated data (up to float64 rounding). Memory:
    three float64 vectors of length C.
    """

    def __init__(self, num_classes: int):
        self.count = np.zeros(num_classes, np.float64)
        self.mean = np.zeros(num_classes, np.float64)
        self.m2 = np.zeros(num_classes, np.float64)

    def update(self, labels: np.ndarray, values: np.ndarray) -> None:
        c = len(self.count)
        n_b = np.bincount(labels, minlength=c).astype(np.float64)
        sum_b = np.bincount(labels, weights=values, minlength=c)
        mean_b = np.divide(sum_b, n_b, out=np.zeros(c), where=n_b > 0)
        dev = values - mean_b[labels]
        m2_b = np.bincount(labels, weights=dev * dev, minlength=c)
        self._merge(n_b, mean_b, m2_b)

    def _merge(self, n_b: np.ndarray, mean_b: np.ndarray,
               m2_b: np.ndarray) -> None:
        n = self.count + n_b
        d = mean_b - self.mean
        safe_n = np.where(n > 0, n, 1.0)
        self.mean = self.mean + d * n_b / safe_n
        self.m2 = self.m2 + m2_b + d * d * self.count * n_b / safe_n
        self.count = n

    def state_dict(self) -> dict:
        return dict(count=self.count.copy(), mean=self.mean.copy(),
                    m2=self.m2.copy())

    def load_state_dict(self, state: dict) -> 'ClassStatistics':
        """Merge another chunk's statistics (e.g. another rank's) in."""
        arrays = [np.asarray(state[k], np.float64)
                  for k in ('count', 'mean', 'm2')]
        if any(a.shape != self.count.shape for a in arrays):
            raise ValueError(f'statistics of {arrays[0].shape} classes '
                             f'cannot be merged into {self.count.shape}')
        self._merge(*arrays)
        return self

    def std(self) -> np.ndarray:
        """Population standard deviation (NaN where count is 0)."""
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.sqrt(self.m2 / self.count)


@OOD_SCORERS.register_module('sml')
class StandardizedMaxLogit(BaseScorer):
    """Standardized max logit: ``S(x) = -(max_c s_c - mu_k) / sigma_k``.

    ``k = argmax_c s_c`` is the predicted class; ``mu_k`` and ``sigma_k`` are
    the mean and standard deviation of the max logit over ID pixels
    predicted as ``k`` (thesis eq. 3.4; Jung et al. 2021, eq. 1). The
    statistics come from :meth:`fit` / :meth:`partial_fit` over ID data (a
    streaming, exact computation) and are saved to / loaded from a small
    JSON file. SML's boundary suppression and dilated smoothing are not part
    of this score. Higher = more OOD.

    Args:
        stats_file: JSON file written by :meth:`save`; loaded at
            construction.
        num_classes: Number of classes, to fit from scratch.
        min_std: Floor on ``sigma`` so that a class with constant max logit
            does not divide by zero.

    Shape:
        ``(N, C, H, W) -> (N, H, W)``; ``(N, C) -> (N,)``.

    References:
        Jung, Lee, Gwak, Kim & Choo, "Standardized Max Logits: A Simple yet
        Effective Approach for Identifying Unexpected Road Obstacles in
        Urban-Scene Segmentation", ICCV 2021; norm-decoupling thesis,
        eq. 3.4.
    """
    name = 'sml'

    def __init__(self, stats_file: Optional[str] = None,
                 num_classes: Optional[int] = None, min_std: float = 1e-6):
        self.min_std = check_number('min_std', min_std, 0.0, low_open=True)
        self.stats: Optional[ClassStatistics] = None
        self.meta: dict = {}
        if stats_file is not None:
            self.load(stats_file)
        elif num_classes is not None:
            if not isinstance(num_classes, int) or num_classes < 1:
                raise ValueError('`num_classes` must be an int >= 1, got '
                                 f'{num_classes!r}')
            self.stats = ClassStatistics(num_classes)

    # fitting ---------------------------------------------------------------
    def partial_fit(self, logits: Tensor,
                    valid: Optional[Tensor] = None) -> 'StandardizedMaxLogit':
        """Add the max logits of one batch of ID data.

        Args:
            logits: ``(N, C, H, W)`` or ``(N, C)``.
            valid: Optional bool mask ``(N, H, W)`` / ``(N,)`` of the pixels
                to use (e.g. not ignore-labelled).
        """
        if logits.dim() not in (2, 4):
            raise ValueError('`logits` must be (N, C) or (N, C, H, W), got '
                             f'{tuple(logits.shape)}')
        if self.stats is None:
            self.stats = ClassStatistics(logits.shape[1])
        if logits.shape[1] != len(self.stats.count):
            raise ValueError(f'logits have {logits.shape[1]} classes, the '
                             f'statistics {len(self.stats.count)}')
        max_logit, label = logits.detach().float().max(dim=1)
        if valid is not None:
            max_logit, label = max_logit[valid], label[valid]
        self.stats.update(label.reshape(-1).cpu().numpy(),
                          max_logit.reshape(-1).double().cpu().numpy())
        return self

    def state_dict(self) -> dict:
        """The fitted statistics (per-class count, mean, M2)."""
        return self._fitted().state_dict()

    def empty_like(self) -> 'StandardizedMaxLogit':
        """An unfitted scorer with the same ``min_std``."""
        return type(self)(min_std=self.min_std)

    def load_state_dict(self, state: dict) -> 'StandardizedMaxLogit':
        """Merge fitted statistics in (another chunk's or rank's): the
        result is the fit on the union of their data."""
        if self.stats is None:
            self.stats = ClassStatistics(len(state['count']))
        self.stats.load_state_dict(state)
        return self

    def fit(self, batches: Iterable[Tensor]) -> 'StandardizedMaxLogit':
        """Fit on an iterable of logits tensors (a stream of ID batches)."""
        for logits in batches:
            self.partial_fit(logits)
        return self

    @property
    def mean(self) -> np.ndarray:
        return self._fitted().mean.copy()

    @property
    def std(self) -> np.ndarray:
        return self._fitted().std()

    def _fitted(self) -> ClassStatistics:
        if self.stats is None or not self.stats.count.any():
            raise RuntimeError(
                "scorer 'sml' has no statistics: fit it on ID data "
                '(StandardizedMaxLogit.fit / partial_fit) or pass '
                '`stats_file`')
        return self.stats

    # persistence -----------------------------------------------------------
    def save(self, path: str, meta: Optional[dict] = None) -> None:
        """Write the statistics (and ``meta``: what they were fitted on) to
        a JSON file."""
        s = self._fitted()
        with open(path, 'w') as f:
            json.dump(dict(scorer='sml', count=s.count.tolist(),
                           mean=s.mean.tolist(), m2=s.m2.tolist(),
                           meta=meta or {}), f, indent=1)

    def load(self, path: str) -> None:
        """Read statistics written by :meth:`save`."""
        if not osp.isfile(path):
            raise FileNotFoundError(f'SML statistics file not found: {path}')
        with open(path) as f:
            data = json.load(f)
        for key in ('count', 'mean', 'm2'):
            if key not in data:
                raise ValueError(f'{path}: SML statistics need the field '
                                 f'{key!r}; found {sorted(data)}')
        arrays = [np.asarray(data[k], np.float64)
                  for k in ('count', 'mean', 'm2')]
        if arrays[0].ndim != 1 or any(a.shape != arrays[0].shape
                                      for a in arrays) or not all(
                                          np.isfinite(a).all()
                                          for a in arrays):
            raise ValueError(f'{path}: `count`, `mean` and `m2` must be '
                             'finite lists of one length (one entry per '
                             'class)')
        stats = ClassStatistics(len(arrays[0]))
        stats.count, stats.mean, stats.m2 = arrays
        self.stats = stats
        self.meta = data.get('meta') or {}

    # scoring ---------------------------------------------------------------
    def score(self, inputs: ScoreInputs) -> Tensor:
        s = self._fitted()
        logits = inputs.logits
        if logits.shape[1] != len(s.count):
            raise ValueError(f"scorer 'sml' was fitted on {len(s.count)} "
                             f'classes, the logits have {logits.shape[1]}')
        mean, std = s.mean.copy(), s.std()
        missing = s.count == 0
        if missing.any():
            # Classes never predicted on the ID data: use pooled statistics.
            warnings.warn(f'SML: no ID pixels predicted as classes '
                          f'{np.flatnonzero(missing).tolist()}; using the '
                          'pooled mean/std for them')
            total = s.count.sum()
            pooled_mean = (s.count * s.mean).sum() / total
            pooled_m2 = s.m2.sum() + (s.count *
                                      (s.mean - pooled_mean)**2).sum()
            mean[missing] = pooled_mean
            std[missing] = np.sqrt(pooled_m2 / total)
        std = np.maximum(std, self.min_std)
        max_logit, label = logits.float().max(dim=1)
        mean_t = torch.as_tensor(mean, dtype=torch.float32,
                                 device=logits.device)
        std_t = torch.as_tensor(std, dtype=torch.float32,
                                device=logits.device)
        return -(max_logit - mean_t[label]) / std_t[label]

    def __repr__(self) -> str:
        fitted = self.stats is not None and bool(self.stats.count.any())
        return f'StandardizedMaxLogit(fitted={fitted})'

