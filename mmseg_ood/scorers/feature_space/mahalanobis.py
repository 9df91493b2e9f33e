"""Mahalanobis distance to the class Gaussians, and its relative form."""
from __future__ import annotations

from typing import Tuple

import numpy as np
from torch import Tensor

from ..base import OOD_SCORERS, ScoreInputs
from .base import FeatureSpaceScorer
from .statistics import StatisticsSpec


def whitening(covariance: np.ndarray) -> np.ndarray:
    """``P`` (``D x r``) with ``P P^T`` the pseudo-inverse of
    ``covariance``: eigenvectors scaled by ``lambda^(-1/2)``, eigenvalues
    below ``D eps max(lambda)`` dropped (the cut-off of
    ``scipy.linalg.pinvh``, hence of sklearn's ``EmpiricalCovariance``
    that Lee et al.'s code fits).

    Args:
        covariance: A symmetric positive semi-definite ``(D, D)`` matrix.
    """
    values, vectors = np.linalg.eigh(covariance)
    cutoff = values.max() * len(values) * np.finfo(np.float64).eps
    keep = values > cutoff
    return vectors[:, keep] / np.sqrt(values[keep])


def _squared_distances(y: Tensor, centres: Tensor) -> Tensor:
    """``||y - nu_c||^2`` for whitened pixels ``y`` ``(P, r)`` and centres
    ``(C, r)``: ``||y||^2 - 2 y . nu_c + ||nu_c||^2``, ``O(C r)`` per
    pixel, clamped at 0 (rounding)."""
    d = (y * y).sum(1, keepdim=True) - 2 * y @ centres.t() + \
        (centres * centres).sum(1)[None]
    return d.clamp_min(0)


class _ClassGaussians(FeatureSpaceScorer):
    """Per-class means and the shared covariance, whitened once."""

    def statistics_spec(self) -> StatisticsSpec:
        return StatisticsSpec(moments=True)

    def prepare(self, statistics) -> None:
        means = statistics.class_means()
        seen = statistics.class_count > 0
        # centred on the mean of all pixels: smaller numbers in float32
        self.origin = statistics.mean()
        self.projection = whitening(statistics.within_class_covariance())
        self.centres = (means[seen] - self.origin) @ self.projection

    def class_distances(self, z: Tensor) -> Tuple[Tensor, Tensor]:
        """``min_c (z - mu_c)^T Sigma^+ (z - mu_c)`` over the classes seen
        in the fit, and the flattened ``z`` ``(P, D)``."""
        flat = z.movedim(1, -1).reshape(-1, z.shape[1])
        origin = self.on_device('origin', self.origin, flat)
        projection = self.on_device('projection', self.projection, flat)
        centres = self.on_device('centres', self.centres, flat)
        y = (flat - origin) @ projection  # O(D r) per pixel
        return _squared_distances(y, centres).min(1).values, flat

    @staticmethod
    def unflatten(values: Tensor, z: Tensor) -> Tensor:
        return values.reshape((z.shape[0], ) + tuple(z.shape[2:]))


@OOD_SCORERS.register_module('mahalanobis')
class Mahalanobis(_ClassGaussians):
    """Mahalanobis: ``S(x) = min_c (z - mu_c)^T Sigma^{-1} (z - mu_c)``.

    Lee, Lee, Lee & Shin (2018), eq. (1)-(2): class-conditional Gaussians
    with class means ``mu_c`` and one covariance ``Sigma`` shared by the
    classes, ``(1/N) sum_c sum_{i in c} (z_i - mu_c)(z_i - mu_c)^T``; the
    confidence score is ``max_c -(z - mu_c)^T Sigma^{-1} (z - mu_c)``, its
    negation is the score here. Higher = more OOD. ``Sigma^{-1}`` is the
    pseudo-inverse, as sklearn's ``EmpiricalCovariance`` in the authors'
    code. Without their input pre-processing and feature ensemble (the
    penultimate layer only).

    Per pixel, in ``O(D r + C r)`` (``r <= D`` the covariance's rank), not
    ``O(C D^2)``: ``Sigma^+ = P P^T``, so the distance is
    ``||P^T z - P^T mu_c||^2``, one projection of the pixel and C dot
    products with the projected means. Classes are the model's predicted
    classes on the ID pixels (Lee et al. use the training labels; see
    :mod:`~mmseg_ood.scorers.feature_space.statistics`); a class never
    predicted there has no Gaussian and is left out of the minimum.

    Args:
        stats_file: Fitted statistics (see :class:`FeatureSpaceScorer`).

    Shape:
        embeddings ``(N, D, H, W)`` (logits ``(N, C, H, W)``) ->
        ``(N, H, W)``; ``(N, D)`` -> ``(N,)``.

    References:
        Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting
        Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018,
        eq. (1)-(2).
    """
    name = 'mahalanobis'

    def score_fitted(self, inputs: ScoreInputs) -> Tensor:
        z = inputs.embeddings.float()
        distance, _ = self.class_distances(z)
        return self.unflatten(distance, z)


@OOD_SCORERS.register_module('rmd')
class RelativeMahalanobis(_ClassGaussians):
    """Relative Mahalanobis: ``S(x) = min_c MD_c(z) - MD_0(z)``.

    Ren, Fort, Liu, Roy, Padhy & Lakshminarayanan (2021), sec. 3:
    ``MD_c`` is the Mahalanobis distance to class ``c`` (shared covariance,
    as :class:`Mahalanobis`) and ``MD_0(z) = (z - mu_0)^T Sigma_0^{-1} (z -
    mu_0)`` the distance to one Gaussian fitted to all ID embeddings
    (the "background" model, eq. 2); ``RMD_c = MD_c - MD_0`` and the
    confidence is ``-min_c RMD_c``, negated here. Higher = more OOD.

    Per pixel, as :class:`Mahalanobis`: one more projection for
    ``MD_0``, ``O(2 D r + C r)``.

    Args:
        stats_file: Fitted statistics (see :class:`FeatureSpaceScorer`).

    Shape:
        embeddings ``(N, D, H, W)`` (logits ``(N, C, H, W)``) ->
        ``(N, H, W)``; ``(N, D)`` -> ``(N,)``.

    References:
        Ren, Fort, Liu, Roy, Padhy & Lakshminarayanan, "A Simple Fix to
        Mahalanobis Distance for Improving Near-OOD Detection", ICML 2021
        UDL workshop (arXiv:2106.09022), eq. (2)-(3).
    """
    name = 'rmd'

    def prepare(self, statistics) -> None:
        super().prepare(statistics)
        self.background = whitening(statistics.covariance())

    def score_fitted(self, inputs: ScoreInputs) -> Tensor:
        z = inputs.embeddings.float()
        distance, flat = self.class_distances(z)
        origin = self.on_device('origin', self.origin, flat)
        background = self.on_device('background', self.background, flat)
        y0 = (flat - origin) @ background
        return self.unflatten(distance - (y0 * y0).sum(1), z)
