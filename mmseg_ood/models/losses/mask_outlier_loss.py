"""What the outlier losses of mask-classification heads share: a per-pixel
score of one decoder layer's class and mask outputs, at the labels'
resolution, and one penalty on ID pixels and one on outliers."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX, PROXY_OOD_INDEX
from .loss_name import check_loss_name


def mask_class_scores(cls_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """``f_k(x) = sum_q softmax(c_q)_k sigmoid(m_q(x))`` over the K known
    classes: mmseg's per-pixel class scores of a mask-classification head.

    Args:
        cls_logits: One decoder layer's class logits ``(N, Q, K + 1)``, the
            last one "no object".
        mask_logits: Its mask logits ``(N, Q, h, w)``.

    Returns:
        Tensor: ``(N, K, h, w)``, each in ``[0, Q]``.
    """
    probs = F.softmax(cls_logits, dim=-1)[..., :-1]
    return torch.einsum('nqk,nqhw->nkhw', probs, mask_logits.sigmoid())


def check_finite_number(name: str, value) -> None:
    """Raise unless ``value`` is a finite int or float (not a bool).

    Args:
        name: The argument's name, for the message.
        value: Its value.

    Raises:
        ValueError: naming the argument and the value.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or value != value or abs(value) == float('inf'):
        raise InvalidValueError(
            f'`{name}` must be a finite number, got {value!r}')


class MaskOutlierLoss(nn.Module):
    """Base of the outlier losses read by
    :class:`~mmseg_ood.models.OutlierMask2FormerHead`: one decoder layer's
    loss from a per-pixel score ``s`` (higher = more OOD).

    ``s`` (:meth:`score`) is computed at the mask resolution and resized to
    the labels' size (bilinear, ``align_corners=True``, as the RbA and
    Mask2Anomaly authors' code does). ID pixels are those labelled with a
    class, outliers those labelled ``ood_index``, ``ignore_index`` neither.
    The loss is ``L_in = mean_ID inlier_penalty(s)`` plus, when the batch
    has outliers, ``L_out = mean_OOD outlier_penalty(s)``, then halved:
    always (``halve_always``) or only when both terms are present. A batch
    with outliers only gives ``L_out / 2`` (the authors' code, whose every
    image has ID pixels, would take the mean of an empty set: NaN); a batch
    with neither gives 0 with a gradient path.

    Subclasses define :meth:`score`, :meth:`inlier_penalty`,
    :meth:`outlier_penalty` and ``halve_always``.

    Args:
        ood_index: Label of outlier pixels.
        loss_weight: Factor of the loss.
        loss_name: Key in the loss dict (must start with ``loss_``).
    """
    #: Halve ``L_in`` when the batch has no outlier too.
    halve_always = False

    def __init__(self, ood_index: int = PROXY_OOD_INDEX,
                 loss_weight: float = 1.0, loss_name: str = 'loss_outlier'):
        super().__init__()
        check_finite_number('loss_weight', loss_weight)
        self.ood_index = int(ood_index)
        self.loss_weight = float(loss_weight)
        self._loss_name = check_loss_name(loss_name)

    def score(self, cls_logits: Tensor, mask_logits: Tensor) -> Tensor:
        """``(N, h, w)`` score of one decoder layer's outputs."""
        raise NotImplementedError

    def inlier_penalty(self, score: Tensor) -> Tensor:
        """Per-pixel penalty of ID pixels' scores."""
        raise NotImplementedError

    def outlier_penalty(self, score: Tensor) -> Tensor:
        """Per-pixel penalty of outliers' scores."""
        raise NotImplementedError

    def forward(self,
                cls_logits: Tensor,
                mask_logits: Tensor,
                target: Tensor,
                ignore_index: int = IGNORE_INDEX) -> Tensor:
        """The loss of one decoder layer.

        Args:
            cls_logits: Class logits ``(N, Q, K + 1)``.
            mask_logits: Mask logits ``(N, Q, h, w)``.
            target: Labels ``(N, H, W)``: classes, ``ood_index``,
                ``ignore_index``.
            ignore_index: Label of void pixels.

        Returns:
            Tensor: The scalar loss; 0 (with a gradient path) when no pixel
            is ID or outlier.
        """
        if target.dim() != 3 or target.shape[0] != mask_logits.shape[0]:
            raise InvalidValueError(
                f'target must be (N, H, W) with N={mask_logits.shape[0]}, '
                f'got {tuple(target.shape)}')
        num_classes = cls_logits.shape[-1] - 1
        if 0 <= self.ood_index < num_classes:
            raise InvalidValueError(
                f'`ood_index`={self.ood_index} is a class index of the '
                f'{num_classes}-class head')
        dtype = torch.promote_types(cls_logits.dtype, torch.float32)
        score = self.score(cls_logits.to(dtype), mask_logits.to(dtype))
        score = F.interpolate(score.unsqueeze(1), size=target.shape[-2:],
                              mode='bilinear', align_corners=True).squeeze(1)
        is_ood = target == self.ood_index
        is_id = (target != ignore_index) & ~is_ood
        has_id, has_ood = bool(is_id.any()), bool(is_ood.any())
        if not has_id and not has_ood:
            return score.sum() * 0.0
        loss = score.new_zeros(())
        if has_id:
            loss = self.inlier_penalty(score[is_id]).mean()
        if has_ood:
            loss = loss + self.outlier_penalty(score[is_ood]).mean()
        if has_ood or self.halve_always:
            loss = 0.5 * loss
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        return self._loss_name
