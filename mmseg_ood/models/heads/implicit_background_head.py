"""IBE and SCrIBE variants of any mmseg decode head.

``dict(type='IBEHead', head=dict(<decode_head config>), background_index=0)``
builds the wrapped head with ``num_classes - 1`` outputs (the foreground
classes) and turns its output into the full k-vector by inserting the
implicit background logit ``v_BG = -logsumexp(v_FG)`` (IBE eq. 5) at
``background_index``. Everything downstream (losses, accuracy, ``seg_logits``,
``pred_sem_seg``, slide inference, TTA) sees the k-vector, so the wrapped
head's own ``loss_by_feat`` / ``predict_by_feat`` run unchanged.

Where the background logit is built (``background_logit``): mmseg resizes
the head's logits bilinearly, to the label size in ``loss_by_feat`` and to
the input (or slide-window crop) size in ``predict_by_feat``.
``'before_resize'`` (default) inserts ``v_BG`` at the head's resolution and
lets mmseg resize it with the foreground logits; ``'after_resize'`` resizes
the k-1 foreground logits and builds ``v_BG`` from the resized ones (the
paper's "three lines" after the model's upsampling to the input size).
Since ``-logsumexp`` is not linear the two differ between the head's pixels.
Both settings have the same parameters, so checkpoints serve either.
Unchanged by the setting: ``forward`` (the k-vector at the head's
resolution, which the OOD scorers read before mmseg resizes), and what
mmseg does after ``predict_by_feat``: slide inference averages the crops'
k-vectors where windows overlap, and ``postprocess_result`` resizes them to
``ori_shape`` when the test pipeline resized the image.

Cascade segmentors (OCRNet): wrap the last head; its ``forward(inputs,
prev_output)`` signature is passed through. The auxiliary head is left
alone unless it is wrapped too.
"""
from __future__ import annotations

import copy
from typing import List, Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from ...errors import InvalidTypeError, InvalidValueError
from ...implicit_background import (check_background_index, foreground_logits,
                                    implicit_background_logits)
from ...utils.arguments import strict_arguments

_CE_TYPES = ('CrossEntropyLoss', 'mmseg.CrossEntropyLoss')

#: Values of ``background_logit``: build ``v_BG`` at the head's resolution
#: and resize it with the foreground logits, or resize the foreground
#: logits first and build ``v_BG`` from them.
BACKGROUND_LOGIT_PLACES = ('before_resize', 'after_resize')


class ImplicitBackgroundHead(BaseModule):
    """Shared mechanism of :class:`IBEHead` and :class:`SCrIBEHead`.

    Args:
        head: Config of an mmseg decode head (a ``BaseDecodeHead``
            subclass with a ``conv_seg`` classifier); its ``num_classes`` is
            k, the number of classes including the background.
        background_index: Index of the background class in the k-vector
            (VOC: 0).
        background_logit: ``'before_resize'`` (default): ``v_BG`` is built
            from the foreground logits at the head's resolution and mmseg
            resizes it with them; ``'after_resize'``: the foreground logits
            are resized (to the label size for the loss, to the input size
            in ``predict_by_feat``) and ``v_BG`` is built from the resized
            ones. No parameter depends on it.
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
                 background_logit: str = 'before_resize',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        name = type(self).__name__
        if background_logit not in BACKGROUND_LOGIT_PLACES:
            raise InvalidValueError(
                f'{name}: `background_logit` must be one of '
                f'{BACKGROUND_LOGIT_PLACES}, got '
                f'{background_logit!r}')
        if not isinstance(head, dict) or 'type' not in head:
            raise InvalidTypeError(
                f'{name}: `head` must be a decode-head config '
                f'dict with a `type`, got {head!r}')
        head = copy.deepcopy(head)
        k = head.get('num_classes')
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            raise InvalidValueError(
                f'{name}: `head.num_classes` must be an int >= 2 '
                '(the foreground classes plus the background), '
                f'got {k!r}')
        try:
            check_background_index(background_index, k)
        except ValueError as e:
            raise InvalidValueError(f'{name}: {e}') from None
        if head.get('out_channels') not in (None, k):
            raise InvalidValueError(
                f'{name}: `head.out_channels` must be None or '
                f"num_classes={k}, got {head['out_channels']!r}")
        head['num_classes'] = k - 1
        if head.get('out_channels') is not None:
            head['out_channels'] = k - 1
        self.head = MODELS.build(self.adapt_head_config(head))
        if not isinstance(self.head, BaseDecodeHead) or not isinstance(
                getattr(self.head, 'conv_seg', None), nn.Conv2d):
            raise InvalidTypeError(
                f'{name} wraps mmseg decode heads (BaseDecodeHead subclasses '
                'with a `conv_seg` classifier), got '
                f'{type(self.head).__name__}'
                '; mask-classification heads have no per-pixel classifier')
        self.background_index = background_index
        self.background_logit = background_logit
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
        """The wrapped head's losses on the k-vector ``seg_logits``
        ``(N, k, h, w)``. With ``background_logit='after_resize'`` the
        foreground logits are first resized to the label size as mmseg's
        ``BaseDecodeHead.loss_by_feat`` resizes (bilinear, the head's
        ``align_corners``) and ``v_BG`` is rebuilt from them; the wrapped
        head's own resize is then to the same size, the identity."""
        if self.background_logit == 'after_resize':
            bg = self.background_index
            size = batch_data_samples[0].gt_sem_seg.data.shape[-2:]
            fg = resize(foreground_logits(seg_logits, bg), size=size,
                        mode='bilinear', align_corners=self.align_corners)
            seg_logits = implicit_background_logits(fg, bg)
        return self.head.loss_by_feat(seg_logits, batch_data_samples)

    def predict_by_feat(self, seg_logits: Tensor,
                        batch_img_metas: List[dict]) -> Tensor:
        """The wrapped head's ``predict_by_feat`` (the resize to the input
        or crop size) of the k-vector ``(N, k, h, w)``. With
        ``background_logit='after_resize'`` the foreground logits are
        resized and ``v_BG`` is rebuilt from them. Channels beyond the k
        (score maps that :class:`~mmseg_ood.models.OODScoring` appends)
        are resized as they are."""
        if self.background_logit == 'before_resize':
            return self.head.predict_by_feat(seg_logits, batch_img_metas)
        bg, k = self.background_index, self.num_classes
        fg = foreground_logits(seg_logits[:, :k], bg)
        out = self.head.predict_by_feat(
            torch.cat([fg, seg_logits[:, k:]], dim=1), batch_img_metas)
        full = implicit_background_logits(out[:, :k - 1], bg)
        return torch.cat([full, out[:, k - 1:]], dim=1) \
            if seg_logits.shape[1] > k else full


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

    Args:
        head: Config of an mmseg decode head with a ``conv_seg``
            classifier; its ``num_classes`` is k, the classes including
            the background (the wrapped head gets k - 1).
        background_index: Index of the background class in the k-vector
            (VOC: 0).
        background_logit: ``'before_resize'`` (default) or
            ``'after_resize'``: where ``v_BG`` is built (see
            :class:`ImplicitBackgroundHead`).
        init_cfg: Initialization config of the wrapper (the wrapped head
            keeps its own).

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

    Args:
        head: Config of an mmseg decode head with a ``conv_seg``
            classifier; its ``num_classes`` is k, the classes including
            the background (the wrapped head gets k - 1).
        background_index: Index of the background class in the k-vector
            (VOC: 0).
        background_logit: ``'before_resize'`` (default) or
            ``'after_resize'``: where ``v_BG`` is built (see
            :class:`ImplicitBackgroundHead`).
        init_cfg: Initialization config of the wrapper (the wrapped head
            keeps its own).

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
                raise InvalidValueError(
                    'SCrIBEHead: a CrossEntropyLoss with '
                    '`use_mask=True` cannot be made sigmoid')
            loss['use_sigmoid'] = True
            found = True
        if not found:
            raise InvalidValueError(
                'SCrIBEHead trains with sigmoid cross entropy, but '
                '`head.loss_decode` has no CrossEntropyLoss: '
                f'{[x.get("type") for x in losses]}')
        head['loss_decode'] = losses[0] if single else losses
        return head
