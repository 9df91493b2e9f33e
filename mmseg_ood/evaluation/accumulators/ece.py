"""Calibration: binned expected calibration error and non-distinctiveness."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX
from ..functional.inputs import to_numpy
from .base import Accumulator


class ECEAccumulator(Accumulator):
    """Streaming ECE and expected non-distinctiveness over ID pixels.

    ECE (Guo et al. 2017): confidences ``max_c p_c`` are put into
    ``num_bins`` equal-width bins on [0, 1];
    ``ECE = sum_b (n_b / N) |acc_b - conf_b|``, with accuracy the fraction
    of correctly predicted pixels in the bin. Pixels labelled
    ``ignore_index`` are excluded.

    Expected non-distinctiveness, for models with a background class: IBE
    eq. 4 (ibe-implicit-background-estimation.txt),
    ``mu_ID(v) = max softmax(v_ID)`` (the softmax over the *foreground
    logits only*), ``mu_BG(v) = softmax(v)_BG``, ``mu_ND = mu_BG * mu_ID``,
    averaged over all non-ignored pixels (the paper's ``E[mu_ND(v)]``,
    Table 4). From probabilities, ``softmax(v_ID)_c = p_c / (1 - p_BG)``;
    with ``logits`` it is computed from the foreground logits directly
    (exact also where ``p_BG`` rounds to 1).

    The project reported another quantity before 2026-12-06 (results schema
    1): ``p_BG * max_{c != BG} p_c``, the largest foreground entry of the
    *full* softmax, smaller than eq. 4 by the factor ``1 - p_BG``. It stays
    available under its own name, ``non_distinctiveness_full_softmax``; it
    cannot be compared with the paper's Table 4.

    Memory: three float64 vectors of ``num_bins`` plus three scalars.

    Args:
        num_bins: Number of confidence bins (> 0).
        background_index: Background class for non-distinctiveness, or
            ``None`` to skip it.
        ignore_index: Label excluded from both.
    """

    def __init__(self, num_bins: int = 15,
                 background_index: Optional[int] = None,
                 ignore_index: int = IGNORE_INDEX):
        if not isinstance(num_bins, int) or num_bins < 1:
            raise InvalidValueError(
                f'`num_bins` must be an int >= 1, got {num_bins!r}')
        if background_index is not None and (
                not isinstance(background_index, int) or background_index < 0):
            raise InvalidValueError(
                '`background_index` must be None or an int >= 0, '
                f'got {background_index!r}')
        self.num_bins = num_bins
        self.background_index = background_index
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        b = self.num_bins
        self.count = np.zeros(b, np.float64)
        self.conf_sum = np.zeros(b, np.float64)
        self.correct_sum = np.zeros(b, np.float64)
        self.nd_sum = 0.0
        self.nd_full_sum = 0.0
        self.nd_count = 0

    def update(self, probs, labels,
               logits=None) -> 'ECEAccumulator':
        """Add ``probs`` ``(C, H, W)`` (softmax probabilities) and ``labels``
        ``(H, W)`` class indices; ``logits`` ``(C, H, W)`` (optional, the
        logits ``probs`` came from) make eq. 4's foreground softmax exact
        where the background takes all the mass."""
        p = torch.as_tensor(to_numpy(probs)).float()
        y = torch.as_tensor(to_numpy(labels)).long()
        if p.dim() != 3 or tuple(p.shape[1:]) != tuple(y.shape):
            raise InvalidValueError(
                f'probs must be (C, H, W) and labels (H, W) '
                f'with the same H, W; got {tuple(p.shape)} and '
                f'{tuple(y.shape)}')
        if logits is not None:
            logits = torch.as_tensor(to_numpy(logits))
            if tuple(logits.shape) != tuple(p.shape):
                raise InvalidValueError(f'logits must have the shape of probs '
                                        f'{tuple(p.shape)}, got '
                                        f'{tuple(logits.shape)}')
        valid = y != self.ignore_index
        p = p[:, valid]                          # (C, n)
        y = y[valid]
        if y.numel() == 0:
            return self
        if int(y.max()) >= p.shape[0] or int(y.min()) < 0:
            raise InvalidValueError(
                f'labels must be in [0, {p.shape[0]}) or '
                f'{self.ignore_index}, got {int(y.min())}..'
                f'{int(y.max())}')
        conf, pred = p.max(dim=0)
        correct = (pred == y).double().numpy()
        conf = conf.double().numpy()
        bins = np.minimum((conf * self.num_bins).astype(np.int64),
                          self.num_bins - 1)
        self.count += np.bincount(bins, minlength=self.num_bins)
        self.conf_sum += np.bincount(bins, conf, self.num_bins)
        self.correct_sum += np.bincount(bins, correct, self.num_bins)
        bg = self.background_index
        if bg is not None:
            if bg >= p.shape[0]:
                raise InvalidValueError(
                    f'`background_index` {bg} is not a class of '
                    f'{p.shape[0]}-class probabilities')
            mu_bg = p[bg].double()
            fg = torch.cat([p[:bg], p[bg + 1:]]).double()
            if logits is not None:
                v = logits[:, valid].double()
                v_id = torch.cat([v[:bg], v[bg + 1:]])
                mu_id = torch.softmax(v_id, dim=0).max(dim=0).values
            else:
                mass = fg.sum(dim=0)
                if bool((mass <= 0).any()):
                    raise InvalidValueError(
                        'non-distinctiveness: the background takes all the '
                        'probability at some pixels, so the foreground '
                        'softmax (IBE eq. 4) is undefined from probabilities;'
                        ' pass the logits')
                mu_id = fg.max(dim=0).values / mass
            self.nd_sum += float((mu_bg * mu_id).sum())
            self.nd_full_sum += float((mu_bg * fg.max(dim=0).values).sum())
            self.nd_count += int(y.numel())
        return self

    def load_state_dict(self, state: dict) -> 'ECEAccumulator':
        """Add another accumulator's state (e.g. another rank's)."""
        self.count += state['count']
        self.conf_sum += state['conf_sum']
        self.correct_sum += state['correct_sum']
        self.nd_sum += state['nd_sum']
        self.nd_full_sum += state['nd_full_sum']
        self.nd_count += state['nd_count']
        return self

    def state_dict(self) -> dict:
        return dict(count=self.count.copy(), conf_sum=self.conf_sum.copy(),
                    correct_sum=self.correct_sum.copy(), nd_sum=self.nd_sum,
                    nd_full_sum=self.nd_full_sum, nd_count=self.nd_count)

    def compute(self) -> Dict[str, float]:
        n = self.count.sum()
        out = {}
        if n == 0:
            out['ece'] = float('nan')
        else:
            nz = self.count > 0
            gap = np.abs(self.correct_sum[nz] - self.conf_sum[nz])
            out['ece'] = float(gap.sum() / n)
        if self.background_index is not None:
            n_nd = self.nd_count
            out['non_distinctiveness'] = (self.nd_sum / n_nd if n_nd
                                          else float('nan'))
            out['non_distinctiveness_full_softmax'] = (
                self.nd_full_sum / n_nd if n_nd else float('nan'))
        return out


