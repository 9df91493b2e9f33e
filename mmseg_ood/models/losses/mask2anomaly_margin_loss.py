"""Mask2Anomaly's outlier loss: a margin on the negated largest class score
of outlier pixels, a square on that of ID pixels (Rai et al., ICCV 2023)."""
from __future__ import annotations

from mmseg.registry import MODELS
from torch import Tensor

from ...labels import PROXY_OOD_INDEX
from ...utils.arguments import strict_arguments
from .mask_outlier_loss import (MaskOutlierLoss, check_finite_number,
                                mask_class_scores)


@MODELS.register_module()
@strict_arguments
class Mask2AnomalyMarginLoss(MaskOutlierLoss):
    """Mask2Anomaly's contrastive margin loss on the score ``-max_k f_k``.

    With ``s(x) = -max_k f_k(x)``, ``f_k(x) = sum_q softmax(c_q)_k
    sigmoid(m_q(x))`` over the K known classes (mmseg's per-pixel class
    scores; the ``mask2anomaly`` scorer is ``1 + s``), computed at the mask
    resolution and resized to the labels' size (bilinear,
    ``align_corners=True``), the loss of one decoder layer is

    ``L = (mean_{x in ID} s(x)^2 + mean_{x in OOD} relu(m - s(x))^2) / 2``

    (the second term only when the batch has outlier pixels; the halving
    always), with the margin ``m = 1``. As ``f_k >= 0``, ``s <= 0``: both
    terms raise ``s``, i.e. lower the largest class score, the outlier term
    with the gradient ``2 (m - s)``, the ID term with ``-2 s``, weaker; the
    mask-classification losses keep the ID scores high. This is the form of
    the authors' code, kept as it is, applied to every decoder layer as
    their criterion does.

    Args:
        margin: ``m``; the authors' ``MODEL.MASK_FORMER.MARGIN`` (1.0).
        ood_index: Label of outlier pixels.
        loss_weight: Factor of the loss (``OOD_WEIGHT``, 1.0).
        loss_name: Key in the loss dict (must start with ``loss_``).

    Example:
        >>> outlier_loss = dict(type='Mask2AnomalyMarginLoss')

    References:
        Rai, Cermelli, Fontanel, Masone & Caputo, "Unmasking Anomalies in
        Road-Scene Segmentation", ICCV 2023 (Mask2Anomaly), the contrastive
        loss of its outlier fine-tuning; the authors' code
        ``shyam671/Mask2Anomaly-Unmasking-Anomalies-in-Road-Scene-
        Segmentation``: ``mask2former/modeling/criterion.py``
        ``SetCriterion.loss_ood`` (``OOD_LOSS: margin``), defaults in
        ``mask2former/config.py``, fine-tune settings in
        ``configs/cityscapes/semantic-segmentation/anomaly_ft.yaml``
        (backbone frozen, ``ANOMALY_MIX_RATIO`` 0.2).
    """
    halve_always = True

    def __init__(self,
                 margin: float = 1.0,
                 ood_index: int = PROXY_OOD_INDEX,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_mask2anomaly_margin'):
        super().__init__(ood_index, loss_weight, loss_name)
        check_finite_number('margin', margin)
        self.margin = float(margin)

    def score(self, cls_logits: Tensor, mask_logits: Tensor) -> Tensor:
        """``-max_k f_k``."""
        return -mask_class_scores(cls_logits, mask_logits).amax(dim=1)

    def inlier_penalty(self, score: Tensor) -> Tensor:
        """``s^2``."""
        return score.pow(2)

    def outlier_penalty(self, score: Tensor) -> Tensor:
        """``relu(m - s)^2``."""
        return (self.margin - score).relu().pow(2)
