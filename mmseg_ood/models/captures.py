"""Forward hooks that capture what scorers read."""
from __future__ import annotations

import torch.nn as nn


class EmbeddingCapture:
    """Forward hook on ``conv_seg`` keeping its latest input ``z``.

    Example:
        >>> cap = EmbeddingCapture(head.conv_seg)
        >>> logits = head(feats)           # cap.embeddings is z
        >>> cap.remove()

    Args:
        classifier: The head's final 1x1 classifier (``conv_seg``); the
            hook is registered on it at once and stays until
            :meth:`remove`.
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

    def clear(self) -> None:
        """Forget a capture left by a forward pass that did not finish."""
        self.embeddings = None

    def remove(self) -> None:
        """Unregister the hook and drop the capture."""
        self._handle.remove()
        self.embeddings = None


class QueryCapture:
    """Forward hook on a mask-classification head keeping the final decoder
    layer's class logits ``(N, Q, K + 1)`` and mask logits ``(N, Q, h, w)``.

    The head's ``forward`` returns one of each per decoder layer (a list, or
    a tensor stacked over layers); ``predict`` uses the last, and so does
    this capture.

    Args:
        head: The mask-classification decode head (mmseg's
            ``MaskFormerHead`` / ``Mask2FormerHead``); its ``forward``
            must return ``(cls_scores, mask_preds)``. The hook is
            registered at once and stays until :meth:`remove`.
    """

    def __init__(self, head: nn.Module):
        self.query_logits = None
        self.mask_logits = None
        self._handle = head.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        cls_scores, mask_preds = output
        self.query_logits = cls_scores[-1]
        self.mask_logits = mask_preds[-1]

    def pop(self):
        """``(query_logits, mask_logits)`` of the latest forward, cleared."""
        out = self.query_logits, self.mask_logits
        self.query_logits = self.mask_logits = None
        return out

    def clear(self) -> None:
        """Forget a capture left by a forward pass that did not finish."""
        self.query_logits = self.mask_logits = None

    def remove(self) -> None:
        """Unregister the hook and drop the capture."""
        self._handle.remove()
        self.clear()
