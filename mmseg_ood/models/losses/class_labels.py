"""Checking and indexing hard class labels, shared by the losses."""
from torch import Tensor

from mmseg_ood.errors import InvalidValueError


def class_labels(target: Tensor, is_class: Tensor, num_classes: int,
                 others: str) -> Tensor:
    """``target`` with every non-class pixel set to 0, after checking that
    the pixels in ``is_class`` hold a class in ``[0, num_classes)``.

    Args:
        target: Integer labels.
        is_class: Bool mask of the pixels that must hold a class.
        num_classes: Number of classes of the prediction.
        others: What the other labels may be, for the error message
            (``'ignore_index=255'``).

    Returns:
        Tensor: int64 labels, safe to index with (0 outside ``is_class``).
    """
    labels = target[is_class]
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0].item()
        raise InvalidValueError(f'label {bad} is neither a class in '
                                f'[0, {num_classes}) nor {others}')
    return target.masked_fill(~is_class, 0).long()
