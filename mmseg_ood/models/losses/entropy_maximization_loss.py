"""Entropy maximization on outlier pixels (entropy-max paper, eq. 2-4)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from mmseg.registry import MODELS
from torch import Tensor

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX, PROXY_OOD_INDEX
from ...utils.arguments import strict_arguments
from .class_labels import class_labels
from .loss_name import check_loss_name


@MODELS.register_module()
@strict_arguments
class EntropyMaximizationLoss(nn.Module):
    """``(1 - lambda) CE`` on ID pixels + ``lambda * l_out`` on outliers.

    ``l_in = -log p_y`` (eq. 3) on pixels labelled with a class,
    ``l_out = -(1/q) sum_j log p_j`` (eq. 4) on pixels labelled
    ``ood_index`` (254), nothing on ``ignore_index`` (255); ``q`` is the
    number of classes. Minimizing ``l_out`` maximizes the softmax entropy:
    ``l_out >= log q``, with equality for the uniform distribution (eq. 5).

    Normalization: the pixel mean over the batch's valid pixels (ID and
    outlier), ``L = (1/|V|) sum_{i in V} [(1 - lambda) [i in ID] l_in(i) +
    lambda [i in OOD] l_out(i)]`` - eq. 2 with the expectations taken over
    pixels of the mixed batch. This is the authors' code's weighting (one
    mean over all pixels with per-pixel weights ``1 - lambda`` and
    ``lambda / q``), except that they also divide by ``q`` and count void
    pixels in the mean; both only rescale the loss. A batch with no valid
    pixel gives 0.

    Args:
        ood_weight: ``lambda`` of eq. 2, in [0, 1]; the paper fine-tunes
            DeepLabV3+ with 0.9.
        ood_index: Label of outlier (proxy) pixels.
        loss_weight: Factor of the loss.
        loss_name: Key in the loss dict (must start with ``loss_``).

    Example:
        >>> loss_decode = dict(type='EntropyMaximizationLoss', ood_weight=0.9)

    References:
        "Entropy Maximization and Meta Classification for
        Out-of-Distribution Detection in Semantic Segmentation", eq. 2-5.
    """

    def __init__(self,
                 ood_weight: float = 0.9,
                 ood_index: int = PROXY_OOD_INDEX,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_entropy_max'):
        super().__init__()
        if not 0.0 <= ood_weight <= 1.0:
            raise InvalidValueError(
                f'`ood_weight` (lambda) must be in [0, 1], got '
                f'{ood_weight}')
        self.ood_weight = float(ood_weight)
        self.ood_index = int(ood_index)
        self.loss_weight = float(loss_weight)
        self._loss_name = check_loss_name(loss_name)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: int = IGNORE_INDEX,
                **kwargs) -> Tensor:
        """``pred`` logits ``(N, q, H, W)``, ``target`` ``(N, H, W)``."""
        q = pred.shape[1]
        if self.ood_index < q:
            raise InvalidValueError(
                f'`ood_index`={self.ood_index} is a class index '
                f'of the {q}-class prediction')
        if tuple(target.shape) != (pred.shape[0], ) + tuple(pred.shape[2:]):
            raise InvalidValueError(
                f'target {tuple(target.shape)} does not match '
                f'pred {tuple(pred.shape)}')
        is_ood = target == self.ood_index
        is_id = (target != ignore_index) & ~is_ood
        safe = class_labels(
            target, is_id, q,
            f'ood_index={self.ood_index} nor ignore_index={ignore_index}')
        dtype = torch.float64 if pred.dtype == torch.float64 else \
            torch.float32
        log_p = pred.to(dtype).log_softmax(dim=1)
        l_in = -log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
        l_out = -log_p.mean(dim=1)
        per_pixel = torch.where(is_id, (1.0 - self.ood_weight) * l_in,
                                self.ood_weight * l_out)
        mask = (is_id | is_ood).to(dtype)
        if weight is not None:
            mask = mask * weight.to(dtype)
        total = mask.sum()
        if total <= 0:
            return pred.sum() * 0.0
        loss = (per_pixel * mask).sum() / total
        # float32 (or float64) also for float16 / bfloat16 logits, as losses
        # stay float32 under torch.autocast: -log p of a confident wrong
        # class is unbounded, and float16 ends at 65504
        return self.loss_weight * loss

    @property
    def loss_name(self) -> str:
        return self._loss_name
