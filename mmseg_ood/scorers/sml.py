"""Standardized max logit (SML)."""
from __future__ import annotations

import json
import os.path as osp
import warnings
from typing import Iterable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import (InvalidTypeError, InvalidValueError, MissingInputError,
                      OODNotice)
from .base import OOD_SCORERS, BaseScorer, ScoreInputs, check_number


class ClassStatistics:
    """Per-class count, mean and sum of squared deviations, merged exactly.

    Chan et al.'s pairwise update: merging the statistics of two chunks
    gives the statistics of their union, so streaming over batches equals
    one pass over the concatenated data (up to float64 rounding). Memory:
    three float64 vectors of length C.

    Args:
        num_classes: C, the length of the three statistics vectors; class
            indices passed to :meth:`update` must be in ``[0, C)``.
    """

    def __init__(self, num_classes: int):
        self.count = np.zeros(num_classes, np.float64)
        self.mean = np.zeros(num_classes, np.float64)
        self.m2 = np.zeros(num_classes, np.float64)

    def update(self, labels: np.ndarray, values: np.ndarray) -> None:
        """Add one chunk of values.

        Args:
            labels: Class index of each value, int ``(M,)`` in ``[0, C)``.
            values: The values, float ``(M,)``.
        """
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
        """Copies of ``count``, ``mean`` and ``m2``, float64 ``(C,)``."""
        return dict(count=self.count.copy(), mean=self.mean.copy(),
                    m2=self.m2.copy())

    def load_state_dict(self, state: dict) -> 'ClassStatistics':
        """Merge another chunk's statistics (e.g. another rank's) in."""
        arrays = [np.asarray(state[k], np.float64)
                  for k in ('count', 'mean', 'm2')]
        if any(a.shape != self.count.shape for a in arrays):
            raise InvalidValueError(
                f'statistics of {arrays[0].shape} classes '
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
    JSON file. SML's two local refinements, boundary suppression (Jung et
    al. sec. 3.2) and dilated smoothing (sec. 3.3), are options, both off by
    default: off, the score is the plain SML above. Higher = more OOD.

    The refinements act on the SML map ``S(p) = (max_c s_c(p) - mu_k) /
    sigma_k`` in this order, as in the paper (and the authors' code,
    ``network/deepv3.py``), and the result is negated last; both are linear
    in ``S``, so negating first would give the same map. The statistics are
    those of the raw max logits, as the authors fit them
    (``calculate_statistics.py`` runs with both refinements off), so the
    options do not change :meth:`fit` or a saved statistics file.

    Boundary suppression (sec. 3.2). ``k(p) = argmax_c s_c(p)`` is the
    predicted class map; its boundary ``B`` is the set of pixels with a
    differently predicted pixel among their 8 neighbours (two pixels wide
    across a class edge). With ``w = boundary_width``, ``n =
    boundary_iterations`` and ``dw = w / n``, iteration ``i = 0 .. n-1``
    suppresses the band ``B_i = {p : |p - q|_1 <= r_i for some q in B}``,
    ``r_i = w - i dw - 1`` (``r_{n-1} = 0``): ``w - i dw`` pixels on each side
    of an edge, shrinking each iteration, the last one ``B`` itself. Every
    pixel of the band takes the mean of its non-band neighbours (the
    paper's boundary-aware average pooling over a 3x3 window ``W(p)``,
    neighbours outside the image not counted)::

        S_{i+1}(p) = sum_{q in W(p) \\ B_i} S_i(q) / |W(p) \\ B_i|
                     if p in B_i and W(p) \\ B_i is not empty,
        S_{i+1}(p) = S_i(p)  otherwise,

    so the band is filled from its outside in, with the values of the
    regions it separates. Deviation from the authors' code: their ``B`` is
    ``dilation(k, 3x3 cross) != erosion(k, 3x3 square)``, which marks a
    diagonal neighbour pair only on the side of the larger class index; the
    8-neighbour ``B`` here does not depend on the class order. At image
    borders they replicate-pad the window; here out-of-image neighbours are
    left out of the mean.

    Dilated smoothing (sec. 3.3): a Gaussian kernel with holes,
    ``S'(p) = sum_{a, b = -h .. h} g(a, b) S(p + d (a, b))`` with
    ``g(a, b) = exp(-(a^2 + b^2) / (2 sigma^2)) / Z``, ``Z`` making
    ``sum g = 1``, ``h = (smoothing_kernel - 1) / 2``, ``sigma =
    smoothing_sigma``, ``d = smoothing_dilation``. Pixels outside the image
    replicate the nearest border pixel (replicate padding, as the authors'
    code): a constant map stays constant everywhere.

    Defaults: ``w = 4``, ``n = 4``, kernel 7 x 7, ``sigma = 1``, dilation 6,
    the authors' evaluation settings (``eval.py`` and
    ``BoundarySuppressionWithSmoothing`` in ``network/deepv3.py``). Units:
    mmseg_ood scores at the decode head's resolution, before the resize to
    the image, so widths and dilation are in head pixels; the authors apply
    them to the map upsampled to the image (for an output-stride-8 head,
    4 head pixels are about 32 image pixels).

    Args:
        stats_file: JSON file written by :meth:`save`; loaded at
            construction.
        num_classes: Number of classes, to fit from scratch.
        min_std: Floor on ``sigma`` so that a class with constant max logit
            does not divide by zero.
        boundary_suppression: Apply boundary suppression (sec. 3.2); needs
            ``(N, C, H, W)`` logits.
        boundary_width: Initial band width ``w >= 1`` per side of a class
            edge, in head pixels; a multiple of ``boundary_iterations``.
        boundary_iterations: Number of iterations ``n >= 1``; the band
            shrinks by ``w / n`` pixels per iteration.
        dilated_smoothing: Apply dilated smoothing (sec. 3.3); needs
            ``(N, C, H, W)`` logits.
        smoothing_kernel: Odd side ``>= 1`` of the Gaussian kernel.
        smoothing_sigma: Standard deviation ``> 0`` of the Gaussian, in
            kernel taps.
        smoothing_dilation: Dilation ``d >= 1`` of the kernel, in head
            pixels.

    Shape:
        ``(N, C, H, W) -> (N, H, W)``; ``(N, C) -> (N,)`` (without the
        refinements).

    References:
        Jung, Lee, Gwak, Choi & Choo, "Standardized Max Logits: A Simple yet
        Effective Approach for Identifying Unexpected Road Obstacles in
        Urban-Scene Segmentation", ICCV 2021, eq. 1, sec. 3.2-3.3; code:
        github.com/shjung13/Standardized-max-logits; norm-decoupling thesis,
        eq. 3.4.
    """
    name = 'sml'

    def __init__(self, stats_file: Optional[str] = None,
                 num_classes: Optional[int] = None, min_std: float = 1e-6,
                 boundary_suppression: bool = False, boundary_width: int = 4,
                 boundary_iterations: int = 4,
                 dilated_smoothing: bool = False, smoothing_kernel: int = 7,
                 smoothing_sigma: float = 1.0, smoothing_dilation: int = 6):
        self.min_std = check_number('min_std', min_std, 0.0, low_open=True)
        self.boundary_suppression = _check_bool('boundary_suppression',
                                                boundary_suppression)
        self.boundary_width = _check_int('boundary_width', boundary_width)
        self.boundary_iterations = _check_int('boundary_iterations',
                                              boundary_iterations)
        if boundary_width % boundary_iterations:
            raise InvalidValueError(
                '`boundary_width` must be a multiple of '
                f'`boundary_iterations`, got {boundary_width} and '
                f'{boundary_iterations}')
        self.dilated_smoothing = _check_bool('dilated_smoothing',
                                             dilated_smoothing)
        self.smoothing_kernel = _check_int('smoothing_kernel',
                                           smoothing_kernel)
        if smoothing_kernel % 2 == 0:
            raise InvalidValueError('`smoothing_kernel` must be odd, got '
                                    f'{smoothing_kernel}')
        self.smoothing_sigma = check_number('smoothing_sigma',
                                            smoothing_sigma, 0.0,
                                            low_open=True)
        self.smoothing_dilation = _check_int('smoothing_dilation',
                                             smoothing_dilation)
        self.stats: Optional[ClassStatistics] = None
        self.meta: dict = {}
        if stats_file is not None:
            self.load(stats_file)
        elif num_classes is not None:
            if not isinstance(num_classes, int) or num_classes < 1:
                raise InvalidValueError(
                    '`num_classes` must be an int >= 1, got '
                    f'{num_classes!r}')
            self.stats = ClassStatistics(num_classes)

    # fitting ---------------------------------------------------------------
    def partial_fit(self, logits: Union[Tensor, ScoreInputs],
                    valid: Optional[Tensor] = None) -> 'StandardizedMaxLogit':
        """Add the max logits of one batch of ID data.

        Args:
            logits: ``(N, C, H, W)`` or ``(N, C)``, or a captured forward
                pass (:class:`ScoreInputs`) whose ``logits`` are read.
            valid: Optional bool mask ``(N, H, W)`` / ``(N,)`` of the pixels
                to use (e.g. not ignore-labelled).
        """
        if isinstance(logits, ScoreInputs):
            logits = logits.logits
        if logits.dim() not in (2, 4):
            raise InvalidValueError(
                '`logits` must be (N, C) or (N, C, H, W), got '
                f'{tuple(logits.shape)}')
        if self.stats is None:
            self.stats = ClassStatistics(logits.shape[1])
        if logits.shape[1] != len(self.stats.count):
            raise InvalidValueError(
                f'logits have {logits.shape[1]} classes, the '
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
        """An unfitted scorer with the same parameters (``min_std``, the
        boundary suppression and smoothing options)."""
        return type(self)(
            min_std=self.min_std,
            boundary_suppression=self.boundary_suppression,
            boundary_width=self.boundary_width,
            boundary_iterations=self.boundary_iterations,
            dilated_smoothing=self.dilated_smoothing,
            smoothing_kernel=self.smoothing_kernel,
            smoothing_sigma=self.smoothing_sigma,
            smoothing_dilation=self.smoothing_dilation)

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
        a JSON file, atomically."""
        from ..utils.files import atomic_write_text
        s = self._fitted()
        atomic_write_text(path, json.dumps(
            dict(scorer='sml', count=s.count.tolist(), mean=s.mean.tolist(),
                 m2=s.m2.tolist(), meta=meta or {}), indent=1))

    def load(self, path: str) -> None:
        """Read statistics written by :meth:`save`."""
        if not osp.isfile(path):
            raise MissingInputError(f'SML statistics file not found: {path}')
        with open(path) as f:
            data = json.load(f)
        for key in ('count', 'mean', 'm2'):
            if key not in data:
                raise InvalidValueError(
                    f'{path}: SML statistics need the field '
                    f'{key!r}; found {sorted(data)}')
        arrays = [np.asarray(data[k], np.float64)
                  for k in ('count', 'mean', 'm2')]
        if arrays[0].ndim != 1 or any(a.shape != arrays[0].shape
                                      for a in arrays) or not all(
                                          np.isfinite(a).all()
                                          for a in arrays):
            raise InvalidValueError(
                f'{path}: `count`, `mean` and `m2` must be '
                'finite lists of one length (one entry per '
                'class)')
        stats = ClassStatistics(len(arrays[0]))
        stats.count, stats.mean, stats.m2 = arrays
        self.stats = stats
        self.meta = data.get('meta') or {}

    # scoring ---------------------------------------------------------------
    def score(self, inputs: ScoreInputs) -> Tensor:
        logits = inputs.logits
        spatial = self.boundary_suppression or self.dilated_smoothing
        if spatial and logits.dim() != 4:
            raise InvalidValueError(
                "scorer 'sml': `boundary_suppression` and "
                '`dilated_smoothing` need spatial logits (N, C, H, W), got '
                f'shape {tuple(logits.shape)}')
        s = self._fitted()
        if logits.shape[1] != len(s.count):
            raise InvalidValueError(
                f"scorer 'sml' was fitted on {len(s.count)} "
                f'classes, the logits have {logits.shape[1]}')
        mean, std = s.mean.copy(), s.std()
        missing = s.count == 0
        if missing.any():
            # Classes never predicted on the ID data: use pooled statistics.
            warnings.warn(f'SML: no ID pixels predicted as classes '
                          f'{np.flatnonzero(missing).tolist()}; using the '
                          'pooled mean/std for them', OODNotice)
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
        sml = (max_logit - mean_t[label]) / std_t[label]
        if spatial:
            sml = sml.unsqueeze(1)
            if self.boundary_suppression:
                sml = _suppress_boundaries(sml, label.unsqueeze(1),
                                           self.boundary_width,
                                           self.boundary_iterations)
            if self.dilated_smoothing:
                sml = _dilated_smoothing(sml, self.smoothing_kernel,
                                         self.smoothing_sigma,
                                         self.smoothing_dilation)
            sml = sml.squeeze(1)
        return -sml

    def __repr__(self) -> str:
        fitted = self.stats is not None and bool(self.stats.count.any())
        options = ''
        if self.boundary_suppression:
            options += (f', boundary_width={self.boundary_width}, '
                        f'boundary_iterations={self.boundary_iterations}')
        if self.dilated_smoothing:
            options += (f', smoothing_kernel={self.smoothing_kernel}, '
                        f'smoothing_sigma={self.smoothing_sigma}, '
                        f'smoothing_dilation={self.smoothing_dilation}')
        return f'StandardizedMaxLogit(fitted={fitted}{options})'


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise InvalidTypeError(f'`{name}` must be a bool, got {value!r}')
    return value


def _check_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f'`{name}` must be an int >= {low}, got '
                               f'{type(value).__name__} {value!r}')
    if value < low:
        raise InvalidValueError(
            f'`{name}` must be an int >= {low}, got {value}')
    return value


def _suppress_boundaries(values: Tensor, labels: Tensor, width: int,
                         iterations: int) -> Tensor:
    """Boundary suppression of ``values`` ``(N, 1, H, W)`` along the class
    edges of ``labels`` ``(N, 1, H, W)`` (see :class:`StandardizedMaxLogit`).
    """
    lab = labels.to(values.dtype)
    # a pixel is on the boundary iff the labels in its 3x3 window differ;
    # max_pool2d pads with -inf, so out-of-image pixels do not count
    edge = F.max_pool2d(lab, 3, 1, 1) != -F.max_pool2d(-lab, 3, 1, 1)
    edge = edge.to(values.dtype)
    window = values.new_ones(1, 1, 3, 3)
    step = width // iterations
    out = values
    for i in range(iterations):
        radius = 0 if i == iterations - 1 else width - step * i - 1
        band = edge
        if radius:
            taps = torch.arange(-radius, radius + 1, device=values.device)
            ball = (taps.abs()[:, None] + taps.abs()[None, :] <= radius)
            band = F.conv2d(edge, ball.to(values.dtype)[None, None],
                            padding=radius)
        band = band > 0.5
        # zero padding: neighbours outside the image add nothing to either
        # the sum or the count
        total = F.conv2d(torch.where(band, 0.0, out), window, padding=1)
        count = F.conv2d((~band).to(values.dtype), window, padding=1)
        mean = total / count.clamp_min(1.0)
        out = torch.where(band & (count > 0.5), mean, out)
    return out


def _dilated_smoothing(values: Tensor, kernel_size: int, sigma: float,
                       dilation: int) -> Tensor:
    """Dilated Gaussian smoothing of ``values`` ``(N, 1, H, W)`` with
    replicate padding (see :class:`StandardizedMaxLogit`)."""
    half = (kernel_size - 1) // 2
    taps = torch.arange(-half, half + 1, dtype=values.dtype,
                        device=values.device)
    kernel = torch.exp(-(taps[:, None]**2 + taps[None, :]**2) /
                       (2.0 * sigma**2))
    kernel = kernel / kernel.sum()
    pad = dilation * half
    padded = F.pad(values, (pad, pad, pad, pad), mode='replicate')
    return F.conv2d(padded, kernel[None, None], dilation=dilation)

