"""ViM: the residual outside the principal subspace as a virtual logit."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from ...errors import InvalidValueError
from ..base import OOD_SCORERS, ScoreInputs
from .base import FeatureSpaceScorer, classifier_logits
from .statistics import StatisticsSpec


def default_principal_dim(dim: int) -> int:
    """The authors' choice of ``D'`` (their code): 1000 for ``D >= 2048``,
    512 for ``D >= 768``, else ``D / 2``.

    Args:
        dim: ``D``, the embedding dimension.
    """
    if dim >= 2048:
        return 1000
    if dim >= 768:
        return 512
    return dim // 2


@OOD_SCORERS.register_module('vim')
class ViM(FeatureSpaceScorer):
    """ViM: ``S(x) = alpha ||(z - u)^{P-perp}|| - log sum_c exp(s_c)``.

    Wang, Li, Feng & Zhang (2022), sec. 3: the origin ``u = -(W^T)^+ b``
    (eq. 2's offset, the authors' code); the principal subspace ``P`` is
    spanned by the eigenvectors of the ``D'`` largest eigenvalues of
    ``(1/N) sum_i (z_i - u)(z_i - u)^T`` over ID embeddings, and the
    residual ``x^{P-perp}`` is the projection of ``z - u`` on the other
    ``D - D'`` eigenvectors (eq. 4). The virtual logit ``l_0 = alpha
    ||x^{P-perp}||`` (eq. 5) with ``alpha = sum_i max_c s_c(z_i) / sum_i
    ||x_i^{P-perp}||`` over ID data (eq. 6); the ViM score is the softmax
    probability of ``l_0`` against the C logits (eq. 7), whose ranking
    equals that of ``l_0 - log sum_c exp(s_c)``, the score computed here
    (as the authors' code and pytorch-ood). Higher = more OOD.

    Per pixel: the embeddings of the ID pixels; ``alpha``'s two sums are
    taken over the fitted bank of ID pixel embeddings (a uniform sample,
    ``bank_size`` pixels; the paper uses every training image), the
    subspace from the exact streamed second moment. Logits ``s = W z + b``
    are the classifier's (for IBE heads: the foreground logits).

    Args:
        principal_dim: ``D'``; default :func:`default_principal_dim`.
        bank_size: ID pixels ``alpha`` is estimated on.
        stats_file: Fitted statistics (see :class:`FeatureSpaceScorer`).

    Shape:
        embeddings ``(N, D, H, W)`` (logits ``(N, C, H, W)``) ->
        ``(N, H, W)``; ``(N, D)`` -> ``(N,)``.

    References:
        Wang, Li, Feng & Zhang, "ViM: Out-Of-Distribution with
        Virtual-logit Matching", CVPR 2022, eq. (2)-(7); code:
        github.com/haoqiwang/vim.
    """
    name = 'vim'

    def __init__(self, principal_dim: Optional[int] = None,
                 bank_size: int = 10000, stats_file: Optional[str] = None):
        if principal_dim is not None and (
                isinstance(principal_dim, bool)
                or not isinstance(principal_dim, int) or principal_dim < 1):
            raise InvalidValueError(
                f'`principal_dim` must be an int >= 1, got {principal_dim!r}')
        if isinstance(bank_size, bool) or not isinstance(bank_size, int) \
                or bank_size < 1:
            raise InvalidValueError(
                f'`bank_size` must be an int >= 1, got {bank_size!r}')
        self.principal_dim = principal_dim
        self.bank_size = bank_size
        super().__init__(stats_file)

    def statistics_spec(self) -> StatisticsSpec:
        return StatisticsSpec(moments=True, bank_size=self.bank_size)

    def subspace(self, weight: Tensor, bias: Optional[Tensor]) -> dict:
        """``u``, the residual basis ``R`` (``D x (D - D')``) and
        ``alpha`` for the classifier ``W``, ``b``."""
        stats = self.fitted()
        w = weight.double().cpu().numpy()
        b = np.zeros(len(w)) if bias is None else \
            bias.double().cpu().numpy()
        dim = stats.dim
        k = self.principal_dim or default_principal_dim(dim)
        if not 1 <= k < dim:
            raise InvalidValueError(
                f"scorer 'vim': `principal_dim` must be in [1, {dim}) for "
                f'embeddings of D={dim}, got {k}')
        u = -np.linalg.pinv(w) @ b
        values, vectors = np.linalg.eigh(stats.second_moment(u))
        order = np.argsort(-values, kind='stable')
        residual = np.ascontiguousarray(vectors[:, order[k:]])
        bank = stats.bank_sample(self.bank_size).astype(np.float64)
        norms = np.linalg.norm((bank - u) @ residual, axis=1)
        max_logit = (bank @ w.T + b).max(axis=1)
        if not norms.sum() > 0:
            raise InvalidValueError(
                "scorer 'vim': the ID embeddings have no component outside "
                f'the principal subspace of D\'={k} dimensions, so alpha is '
                'undefined; give a smaller `principal_dim`')
        alpha = float(max_logit.sum() / norms.sum())
        return dict(u=u, residual=residual, alpha=alpha, principal_dim=k)

    def score_fitted(self, inputs: ScoreInputs) -> Tensor:
        d = self.for_classifier(inputs, self.subspace)
        z = inputs.embeddings.float()
        u = self.on_device('u', d['u'], z)
        residual = self.on_device('residual', d['residual'], z)
        centered = z.movedim(1, -1) - u
        norm = (centered @ residual).norm(dim=-1)
        logits = classifier_logits(z, inputs.cls_weight, inputs.cls_bias)
        return d['alpha'] * norm - torch.logsumexp(logits.float(), dim=1)

    def __repr__(self) -> str:
        return (f'ViM(principal_dim={self.principal_dim}, '
                f'bank_size={self.bank_size})')
