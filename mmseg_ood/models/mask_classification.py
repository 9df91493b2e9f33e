"""mmseg's semantic inference of mask-classification heads, keeping what
the query scorers read.

``MaskFormerHead.predict`` and ``Mask2FormerHead.predict`` (mmseg 1.2.2)
resize the final decoder layer's mask logits to the input, take their
sigmoid and mix them with the class probabilities; the resized mask
probabilities, the largest tensor of the head (``Q x H x W``), are then
dropped. :func:`mask_predict` does the same computation with the same
operations in the same order - so ``seg_logits`` is bit-identical (tested)
- and also returns the class logits and those mask probabilities, so that
``no_object`` costs one more ``Q``-term sum instead of a second resize and
sigmoid.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg_ood.errors import InvalidTypeError


def mask_predict(head: nn.Module, x: Tuple[Tensor], batch_img_metas: List[
        dict]) -> Tuple[Tensor, Tensor, Tensor]:
    """``(seg_logits, query_logits, mask_probs)`` of one forward pass.

    Args:
        head: mmseg's ``MaskFormerHead`` or ``Mask2FormerHead``.
        x: The neck / backbone features, as ``predict`` takes them.
        batch_img_metas: The images' metainfo, as ``predict`` takes it
            (``MaskFormerHead`` sets ``batch_input_shape`` in it, as mmseg
            does).

    Returns:
        ``seg_logits`` ``(N, K, H, W)`` exactly as the head's ``predict``;
        the final layer's class logits ``(N, Q, K + 1)`` (``(N, Q, K + 2)``
        for an :class:`~mmseg_ood.models.heads.OutlierMask2FormerHead`
        with a negative class, which is class K); the sigmoid of
        its mask logits resized to ``(H, W)``, ``(N, Q, H, W)``.
    """
    from mmseg.models.decode_heads import Mask2FormerHead, MaskFormerHead
    from mmseg.structures import SegDataSample
    if isinstance(head, Mask2FormerHead):
        samples = [SegDataSample(metainfo=m) for m in batch_img_metas]
        if 'pad_shape' in batch_img_metas[0]:
            size = batch_img_metas[0]['pad_shape']
        else:
            size = batch_img_metas[0]['img_shape']
    elif isinstance(head, MaskFormerHead):
        samples = []
        for meta in batch_img_metas:
            meta['batch_input_shape'] = meta['img_shape']
            samples.append(SegDataSample(metainfo=meta))
        size = batch_img_metas[0]['batch_input_shape']
    else:
        raise InvalidTypeError('mask_predict needs a MaskFormerHead or '
                               f'Mask2FormerHead, got {type(head).__name__}')
    all_cls_scores, all_mask_preds = head(x, samples)
    query_logits = all_cls_scores[-1]
    mask_logits = F.interpolate(all_mask_preds[-1], size=size,
                                mode='bilinear', align_corners=False)
    cls_score = F.softmax(query_logits, dim=-1)[..., :-1]
    mask_probs = mask_logits.sigmoid()
    seg_logits = torch.einsum('bqc, bqhw->bchw', cls_score, mask_probs)
    # a head with negative classes (UNO's OutlierMask2FormerHead) predicts
    # the known ones only; the query logits keep them
    known = getattr(head, 'num_known_classes', None)
    if known is not None and known < seg_logits.shape[1]:
        seg_logits = seg_logits[:, :known]
    return seg_logits, query_logits, mask_probs
