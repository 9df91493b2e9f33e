"""Find a segmentor's final decode head and capture its classifier input.

The embedding ``z`` is the input of the final 1x1 classifier ``conv_seg``
of the decode head (the last stage for cascade heads such as OCRNet); the
classifier's weight and bias come with it, so that ``s = W z + b``.
"""
from __future__ import annotations

from typing import Optional

import torch.nn as nn
from mmengine.model import is_model_wrapper


def unwrap_segmentor(model: nn.Module) -> nn.Module:
    """The segmentor inside DDP wrappers and TTA models."""
    while True:
        if is_model_wrapper(model):
            model = model.module
        elif hasattr(model, 'module') and hasattr(model, 'merge_preds'):
            model = model.module  # SegTTAModel
        else:
            return model


def final_decode_head(segmentor: nn.Module) -> nn.Module:
    """The decode head whose output is the segmentor's logits."""
    head = getattr(segmentor, 'decode_head', None)
    if head is None:
        raise ValueError(f'{type(segmentor).__name__} has no `decode_head`; '
                         'OOD scoring needs an mmseg EncoderDecoder-style '
                         'segmentor')
    if isinstance(head, nn.ModuleList):  # CascadeEncoderDecoder
        head = head[-1]
    return head


def final_classifier(head: nn.Module) -> Optional[nn.Conv2d]:
    """The head's 1x1 ``conv_seg`` classifier, or ``None`` if it has none
    (mask-classification heads such as MaskFormer / Mask2Former)."""
    conv = getattr(head, 'conv_seg', None)
    if isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and \
            conv.groups == 1:
        return conv
    return None


def head_kind(head: nn.Module) -> str:
    """``'softmax'``, ``'ibe'``, ``'scribe'`` (set by the head as
    ``ood_head_kind``), or ``'mask'`` for heads without ``conv_seg``."""
    kind = getattr(head, 'ood_head_kind', None)
    if kind is not None:
        return kind
    return 'softmax' if final_classifier(head) is not None else 'mask'


class EmbeddingCapture:
    """Forward hook on ``conv_seg`` keeping its latest input ``z``.

    Example:
        >>> cap = EmbeddingCapture(head.conv_seg)
        >>> logits = head(feats)           # cap.embeddings is z
        >>> cap.remove()
    """

    def __init__(self, classifier: nn.Conv2d):
        self.classifier = classifier
        self.embeddings = None
        self._handle = classifier.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.embeddings = args[0]

    @property
    def weight(self):
        """``W``, ``(C, D)``."""
        return self.classifier.weight.flatten(1)

    @property
    def bias(self):
        """``b``, ``(C,)``, or ``None``."""
        return self.classifier.bias

    def remove(self) -> None:
        self._handle.remove()
        self.embeddings = None
