"""Find a segmentor's final decode head and capture what scorers read.

The embedding ``z`` is the input of the final 1x1 classifier ``conv_seg``
of the decode head (the last stage for cascade heads such as OCRNet); the
classifier's weight and bias come with it, so that ``s = W z + b``.
Mask-classification heads (MaskFormer, Mask2Former) have no such
classifier: their final decoder layer's per-query class logits and mask
logits are captured instead (:class:`QueryCapture`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch.nn as nn
from mmengine.model import is_model_wrapper

from mmseg_ood.errors import InvalidValueError


def unwrap_runtime_wrappers(model: nn.Module) -> nn.Module:
    """The model inside DDP-style wrappers and mmseg's TTA model, but not
    inside a model that wraps a segmentor for a purpose of its own (such as
    :class:`~mmseg_ood.models.OODSegmentor`).

    Args:
        model: Any model; DDP-style wrappers (``.module``) and
            ``SegTTAModel`` are peeled off, repeatedly.

    Returns:
        nn.Module: The innermost model that is neither.
    """
    while True:
        if is_model_wrapper(model):
            model = model.module
        elif hasattr(model, 'module') and hasattr(model, 'merge_preds'):
            model = model.module  # SegTTAModel
        else:
            return model


def unwrap_segmentor(model: nn.Module) -> nn.Module:
    """The segmentor inside DDP wrappers, TTA models and any model that says
    what it wraps.

    The protocol: a model that wraps a segmentor (such as
    :class:`~mmseg_ood.models.OODSegmentor`) has a ``wrapped_segmentor``
    attribute naming it, so this module needs no import of the wrappers.

    Args:
        model: Any model, possibly wrapped several times.

    Returns:
        nn.Module: The innermost segmentor.
    """
    while True:
        model = unwrap_runtime_wrappers(model)
        inner = getattr(model, 'wrapped_segmentor', None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def final_decode_head(segmentor: nn.Module) -> nn.Module:
    """The decode head whose output is the segmentor's logits.

    Args:
        segmentor: An unwrapped mmseg segmentor (:func:`unwrap_segmentor`);
            for a ``CascadeEncoderDecoder`` the last head of its
            ``decode_head`` list is the final one.

    Returns:
        nn.Module: The final decode head.

    Raises:
        ValueError: the segmentor has no ``decode_head``.
    """
    head = getattr(segmentor, 'decode_head', None)
    if head is None:
        raise InvalidValueError(
            f'{type(segmentor).__name__} has no `decode_head`; '
            'OOD scoring needs an mmseg EncoderDecoder-style '
            'segmentor')
    if isinstance(head, nn.ModuleList):  # CascadeEncoderDecoder
        head = head[-1]
    return head


def final_classifier(head: nn.Module) -> Optional[nn.Conv2d]:
    """The head's 1x1 ``conv_seg`` classifier, or ``None`` if it has none
    (mask-classification heads such as MaskFormer / Mask2Former).

    Args:
        head: A decode head; only an ungrouped 1x1 ``nn.Conv2d`` named
            ``conv_seg`` counts.

    Returns:
        nn.Conv2d or None: The classifier, whose weight is ``(C, D, 1, 1)``.
    """
    conv = getattr(head, 'conv_seg', None)
    if isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and \
            conv.groups == 1:
        return conv
    return None


def class_weight_norms(model: nn.Module,
                       classes: Optional[Sequence[str]] = None
                       ) -> Optional[dict]:
    """The norms ``w_c = ||W_c||`` of the rows of the final 1x1 classifier.

    The class weights of the norm-decoupling thesis (eq. 4.15-4.16: ``s_c =
    ||W_c|| ||z|| cos(alpha_c)``), which the class-weight exponent eta
    (eq. 4.22-4.23) and the temperature of normalized energy (eq. 4.20)
    act on: decoupled logits lie within ``+-max_c w_c``.

    Args:
        model: A segmentor (inside DDP / TTA / ``OODSegmentor`` wrappers).
        classes: The model's class names (``dataset_meta['classes']``),
            optional.

    Returns:
        ``None`` for a head without a 1x1 classifier (mask classification);
        else ``dict(per_class=[w_c], classes=[name], min=, max=, mean=)``,
        one entry per row of the classifier, computed in float64. An IBE /
        SCrIBE head has no background row: its ``classes`` skip the
        background class (``background_index`` is recorded).
    """
    head = final_decode_head(unwrap_segmentor(model))
    conv = final_classifier(head)
    if conv is None:
        return None
    w = conv.weight.detach().flatten(1).double().norm(dim=1).cpu().tolist()
    background = getattr(head, 'background_index', None) \
        if head_kind(head) in ('ibe', 'scribe') else None
    rows = list(range(len(w) + (background is not None)))
    if background is not None:
        rows.remove(background)
    names = [str(classes[i]) if classes is not None and i < len(classes)
             else str(i) for i in rows]
    out = dict(per_class=w, classes=names, min=min(w), max=max(w),
               mean=sum(w) / len(w))
    if background is not None:
        out['background_index'] = background
    return out


def is_mask_classification_head(head: nn.Module) -> bool:
    """mmseg's ``MaskFormerHead`` or ``Mask2FormerHead`` (or a subclass):
    ``predict`` combines per-query class and mask logits.

    Args:
        head: A decode head.

    Returns:
        bool: Whether it is a mask-classification head.
    """
    from mmseg.models.decode_heads import Mask2FormerHead, MaskFormerHead
    return isinstance(head, (MaskFormerHead, Mask2FormerHead))


def head_kind(head: nn.Module) -> str:
    """``'softmax'``, ``'ibe'``, ``'scribe'`` (set by the head as
    ``ood_head_kind``), ``'mask'`` for mask classification, or ``'logits'``
    for other heads without ``conv_seg``.

    Args:
        head: A decode head (IBE / SCrIBE heads set ``ood_head_kind``).

    Returns:
        str: One of :data:`~mmseg_ood.scorers.base.HEAD_KINDS`.
    """
    kind = getattr(head, 'ood_head_kind', None)
    if kind is not None:
        return kind
    if final_classifier(head) is not None:
        return 'softmax'
    return 'mask' if is_mask_classification_head(head) else 'logits'


# What the heads without a per-pixel linear classifier compute instead.
_HEAD_DESCRIPTIONS = {
    'PointHead': "PointRend: coarse FPNHead logits upsampled, the most "
                 'uncertain points re-classified by an MLP; no single '
                 'per-pixel linear classifier',
    'IterativeDecodeHead': "K-Net's kernel-update head: a 1x1 classifier "
                           'whose kernels are computed per image, not '
                           'supported by the embedding scorers',
    'SegmenterMaskTransformerHead': "Segmenter's mask transformer: cosine "
                                    'similarities to per-image class '
                                    'embeddings, then a LayerNorm',
}


def describe_head(head: nn.Module) -> str:
    """The head's class and what it is, for messages, e.g.
    ``"Mask2FormerHead (mask classification: ...)"``.

    Args:
        head: A decode head.

    Returns:
        str: ``'<ClassName> (<what it computes>)'``.
    """
    name = type(head).__name__
    kind = head_kind(head)
    if kind == 'mask':
        what = 'mask classification: per-query class and mask logits'
    else:
        what = next((d for cls, d in _HEAD_DESCRIPTIONS.items()
                     if any(c.__name__ == cls for c in type(head).__mro__)),
                    None)
        if what is None:
            what = {'softmax': 'a 1x1 linear classifier',
                    'ibe': 'IBE, implicit background',
                    'scribe': 'SCrIBE, sigmoid implicit background',
                    'logits': 'class logits without a 1x1 linear classifier'
                    }.get(kind, kind)
    return f'{name} ({what})'


