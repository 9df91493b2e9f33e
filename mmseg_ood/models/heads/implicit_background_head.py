"""IBE and SCrIBE variants of any mmseg decode head.

``dict(type='IBEHead', head=dict(<decode_head config>), background_index=0)``
builds the wrapped head with ``num_classes - 1`` outputs (the foreground
classes) and turns its output into the full k-vector by inserting the
implicit background logit ``v_BG = -logsumexp(v_FG)`` (IBE eq. 5) at
``background_index``. Everything downstream (losses, accuracy, ``seg_logits``,
``pred_sem_seg``, slide inference, TTA) sees the k-vector, so the wrapped
head's own ``loss_by_feat`` / ``predict_by_feat`` run unchanged.

Cascade segmentors (OCRNet): wrap the last head; its ``forward(inputs,
prev_output)`` signature is passed through. The auxiliary head is left
alone unless it is wrapped too.
"""
from __future__ import annotations

import copy
from typing import List, Optional

import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor

from ...implicit_background import (check_background_index,
                                    implicit_background_logits)
from ...utils.arguments import strict_arguments

_CE_TYPES = ('CrossEntropyLoss', 'mmseg.CrossEntropyLoss')


class ImplicitBackgroundHead(BaseModule):
    """Shared mechanism of :class:`IBEHead` and :class:`SCrIBEHead`.

    Args:
        head: Config of an mmseg decode head (a ``BaseDecodeHead``
            subclass with a ``conv_seg`` classifier); its ``num_classes`` is
            k, the number of classes including the background.
        background_index: Index of the background class in the k-vector
            (VOC: 0).
        init_cfg: Initialization config of the wrapper (the wrapped head
            keeps its own).

    Attributes:
        head: The wrapped head, with ``num_classes = k - 1``.
        num_classes, out_channels: k, as the segmentor expects.
        ood_head_kind: ``'ibe'`` or ``'scribe'``; tells
            :class:`~mmseg_ood.models.OODScoring` how to read the logits.

    Other attributes (``align_corners``, ``ignore_index``, ``loss_decode``,
    ``conv_seg``, ``threshold`` ...) are the wrapped head's.
    """
    ood_head_kind = ''

    def __init__(self,
                 head: dict,
                 background_index: int = 0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        name = type(self).__name__
        if not isinstance(head, dict) or 'type' not in head:
            raise TypeError(f'{name}: `head` must be a decode-head config '
                            f'dict with a `type`, got {head!r}')
        head = copy.deepcopy(head)
        k = head.get('num_classes')
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            raise ValueError(f'{name}: `head.num_classes` must be an int >= 2 '
                             '(the foreground classes plus the background), '
                             f'got {k!r}')
        try:
            check_background_index(background_index, k)
        except ValueError as e:
            raise ValueError(f'{name}: {e}') from None
        if head.get('out_channels') not in (None, k):
            raise ValueError(f'{name}: `head.out_channels` must be None or '
                             f"num_classes={k}, got {head['out_channels']!r}")
        head['num_classes'] = k - 1
        if head.get('out_channels') is not None:
            head['out_channels'] = k - 1
        self.head = MODELS.build(self.adapt_head_config(head))
        if not isinstance(self.head, BaseDecodeHead) or not isinstance(
                getattr(self.head, 'conv_seg', None), nn.Conv2d):
            raise TypeError(
                f'{name} wraps mmseg decode heads (BaseDecodeHead subclasses '
                'with a `conv_seg` classifier), got '
                f'{type(self.head).__name__}'
                '; mask-classification heads have no per-pixel classifier')
        self.background_index = background_index
        self.num_classes = k
        self.out_channels = k

    def adapt_head_config(self, head: dict) -> dict:
        """Hook for subclasses to change the wrapped head's config."""
        return head

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == 'head':
                raise
            return getattr(super().__getattr__('head'), name)

    def forward(self, *inputs) -> Tensor:
        """The wrapped head's forward (``inputs`` or ``inputs,
        prev_output``), then the implicit background: ``(N, k, h, w)``."""
        return implicit_background_logits(self.head(*inputs),
                                          self.background_index)

    def loss(self, *args) -> dict:
        """``loss(inputs, [prev_output,] batch_data_samples, train_cfg)``,
        as the wrapped head's."""
        *inputs, batch_data_samples, _ = args
        return self.loss_by_feat(self.forward(*inputs), batch_data_samples)

    def predict(self, *args) -> Tensor:
        """``predict(inputs, [prev_output,] batch_img_metas, test_cfg)``,
        as the wrapped head's."""
        *inputs, batch_img_metas, _ = args
        return self.predict_by_feat(self.forward(*inputs), batch_img_metas)

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: list) -> dict:
        return self.head.loss_by_feat(seg_logits, batch_data_samples)

    def predict_by_feat(self, seg_logits: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        return self.head.predict_by_feat(seg_logits, batch_img_metas)


@MODELS.register_module()
@strict_arguments
class IBEHead(ImplicitBackgroundHead):
    """Implicit Background Estimation around any decode head.

    The classifier outputs the k-1 foreground logits; the background logit
    is ``v_BG = -logsumexp(v_FG)`` (IBE eq. 5) and the wrapped head's own
    losses (softmax cross entropy by default) are applied to the k-vector.
    At a background pixel, softmax CE gives
    ``dL/dv_n = 2 e^{v_n} S / (S^2 + 1)`` for each foreground logit
    ``v_n``, ``S = sum_FG e^{v_m}`` (scribe eq. 2, which writes the
    negative, descent direction).

    Example:
        >>> decode_head = dict(type='IBEHead', background_index=0,
        ...                    head=dict(type='DepthwiseSeparableASPPHead',
        ...                              num_classes=21, ...))

    References:
        "Implicit Background Estimation for Semantic Segmentation" (IBE),
        eq. 5 and theorem 2.1; "SCrIBE: Sigmoid + IBE", eq. 2.
    """
    ood_head_kind = 'ibe'


@MODELS.register_module()
@strict_arguments
class SCrIBEHead(ImplicitBackgroundHead):
    """Sigmoid cross entropy with Implicit Background Estimation.

    As :class:`IBEHead`, and every ``CrossEntropyLoss`` of the wrapped
    head's ``loss_decode`` is switched to ``use_sigmoid=True``: binary cross
    entropy on all k components, the background's ``v_BG = -logsumexp(v_FG)``
    included (mmseg's sigmoid CE averages over components and pixels). The
    background term alone gives each foreground logit
    ``dL/dv_n = e^{v_n} / (1 + S)`` (scribe eq. 4, in magnitude); each
    foreground component's own sigmoid term adds ``sigmoid(v_n) - y_n``.
    Other losses in ``loss_decode`` are kept as they are; a head without a
    cross-entropy loss is refused.

    Pixels labelled neither a class nor ``ignore_index`` (e.g. 254
    outliers) count, in mmseg's sigmoid CE, as "no class": every component,
    background included, is pushed negative.

    References:
        "SCrIBE: Sigmoid + IBE", sec. 3, eq. 4; IBE eq. 5.
    """
    ood_head_kind = 'scribe'

    def adapt_head_config(self, head: dict) -> dict:
        losses = head.get('loss_decode', dict(type='CrossEntropyLoss'))
        single = isinstance(losses, dict)
        losses = [losses] if single else list(losses)  # `head` is a copy
        found = False
        for loss in losses:
            if loss.get('type') not in _CE_TYPES:
                continue
            if loss.get('use_mask', False):
                raise ValueError('SCrIBEHead: a CrossEntropyLoss with '
                                 '`use_mask=True` cannot be made sigmoid')
            loss['use_sigmoid'] = True
            found = True
        if not found:
            raise ValueError(
                'SCrIBEHead trains with sigmoid cross entropy, but '
                '`head.loss_decode` has no CrossEntropyLoss: '
                f'{[x.get("type") for x in losses]}')
        head['loss_decode'] = losses[0] if single else losses
        return head
