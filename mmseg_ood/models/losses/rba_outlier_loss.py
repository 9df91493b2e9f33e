"""RbA's outlier loss: a squared hinge on the RbA score of ID and outlier
pixels (Nayal et al., ICCV 2023, sec. 3.3)."""
from __future__ import annotations

from mmseg.registry import MODELS
from torch import Tensor

from ...errors import InvalidValueError
from ...labels import PROXY_OOD_INDEX
from ...utils.arguments import strict_arguments
from .mask_outlier_loss import (MaskOutlierLoss, check_finite_number,
                                mask_class_scores)


def rba_score(cls_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """The RbA score of every mask pixel, ``-sum_k tanh(f_k)``.

    Args:
        cls_logits: One decoder layer's class logits ``c``, ``(N, Q, K +
            1)``, the last one "no object".
        mask_logits: Its mask logits ``m``, ``(N, Q, h, w)``.

    Returns:
        Tensor: ``(N, h, w)``, with ``f_k = sum_q softmax(c_q)_k
        sigmoid(m_q)`` over the K known classes; in ``(-K, 0]``.
    """
    return -mask_class_scores(cls_logits, mask_logits).tanh().sum(dim=1)


@MODELS.register_module()
@strict_arguments
class RbAOutlierLoss(MaskOutlierLoss):
    """Squared hinge on the RbA score: low on ID pixels, high on outliers.

    With the RbA score ``s(x) = -sum_k tanh(f_k(x))`` (:func:`rba_score`;
    the ``rba`` scorer), ``f_k(x) = sum_q softmax(c_q)_k sigmoid(m_q(x))``,
    computed at the mask resolution and resized to the labels' size
    (bilinear, ``align_corners=True``, as the authors' code does), the loss
    of one decoder layer is

    ``L_in = mean_{x in ID} relu(s(x) - tau_in)^2``,
    ``L_out = mean_{x in OOD} relu(tau_out - s(x))^2``,
    ``L = (L_in + L_out) / 2``, or ``L = L_in`` when the batch has no
    outlier pixel,

    ID pixels being those labelled with a class, outliers those labelled
    ``ood_index`` (254), ``ignore_index`` (255) neither. ``L_in`` pushes a
    known pixel's score below ``tau_in = -1`` (at least one class claims it
    with ``tanh(f_k) >= 1``), ``L_out`` pushes an outlier's above ``tau_out
    = -0.1`` (every class rejects it). The halving when outliers are present
    and its absence otherwise are the authors' code's, kept as they are.
    One deviation: a batch with outlier pixels only (a proxy image whose
    other pixels are void, as :class:`~mmseg_ood.datasets.OutlierMixDataset`
    mixes them in) gives ``L_out / 2``, where the authors' code (whose every
    image has ID pixels) would take the mean of an empty set (NaN).

    Args:
        inlier_margin: ``tau_in``; the paper's ``INLIER_UPPER_THRESHOLD``
            (-1.0).
        outlier_margin: ``tau_out``; ``OUTLIER_LOWER_THRESHOLD`` (-0.1).
            Must be > ``inlier_margin``.
        ood_index: Label of outlier pixels.
        loss_weight: Factor of the loss (``OUTLIER_WEIGHT``, 1.0).
        loss_name: Key in the loss dict (must start with ``loss_``).

    Example:
        >>> outlier_loss = dict(type='RbAOutlierLoss')  # paper's margins

    References:
        Nayal, Yavuz, Henriques & Guney, "RbA: Segmenting Unknown Regions
        Rejected by All", ICCV 2023, sec. 3.3 (outlier supervision) and the
        authors' code ``NazirNayal8/RbA``: ``mask2former/modeling/
        criterion.py`` ``SetCriterion.outlier_loss`` (``OUTLIER_LOSS_TARGET:
        nls``, ``SCORE_NORM: tanh``, ``OUTLIER_LOSS_FUNC: squared_hinge``),
        margins from ``mask2former/config.py``; itself adapted from PEBAL
        (Tian et al., ECCV 2022, eq. 4).
    """

    def __init__(self,
                 inlier_margin: float = -1.0,
                 outlier_margin: float = -0.1,
                 ood_index: int = PROXY_OOD_INDEX,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_rba_outlier'):
        super().__init__(ood_index, loss_weight, loss_name)
        check_finite_number('inlier_margin', inlier_margin)
        check_finite_number('outlier_margin', outlier_margin)
        if not outlier_margin > inlier_margin:
            raise InvalidValueError(
                f'`outlier_margin` ({outlier_margin}) must be greater than '
                f'`inlier_margin` ({inlier_margin}): outliers are pushed '
                'above it, ID pixels below')
        self.inlier_margin = float(inlier_margin)
        self.outlier_margin = float(outlier_margin)

    def score(self, cls_logits: Tensor, mask_logits: Tensor) -> Tensor:
        """The RbA score, :func:`rba_score`."""
        return rba_score(cls_logits, mask_logits)

    def inlier_penalty(self, score: Tensor) -> Tensor:
        """``relu(s - tau_in)^2``."""
        return (score - self.inlier_margin).relu().pow(2)

    def outlier_penalty(self, score: Tensor) -> Tensor:
        """``relu(tau_out - s)^2``."""
        return (self.outlier_margin - score).relu().pow(2)
