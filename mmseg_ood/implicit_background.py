"""The implicit background logit of IBE (eq. 5), shared by heads and scorers.

Kept free of other package imports so that both :mod:`mmseg_ood.models`
and :mod:`mmseg_ood.scorers` can use it.
"""
import torch
from torch import Tensor


def check_background_index(background_index, num_classes: int) -> None:
    """Raise ``ValueError`` unless ``background_index`` is an int in
    ``[0, num_classes)``.

    Args:
        background_index: The position of the background class in the
            k-vector of logits (a ``bool`` is refused).
        num_classes: ``k``, the number of classes the background included.

    Raises:
        ValueError: naming ``background_index``, the allowed range and the
            value received.
    """
    if not isinstance(background_index, int) or isinstance(
            background_index, bool) or not 0 <= background_index < num_classes:
        raise ValueError(f'`background_index` must be an int in '
                         f'[0, {num_classes}) for num_classes={num_classes}, '
                         f'got {background_index!r}')


def implicit_background_logits(foreground: Tensor,
                               background_index: int = 0) -> Tensor:
    """Insert ``v_BG = -logsumexp(v_FG)`` as class ``background_index``.

    IBE eq. 5: ``v = (v_BG, v_ID1, ..., v_IDk-1)`` with
    ``v_BG = -log sum_m exp(v_IDm)``. The background wins only where every
    foreground logit is negative (``v_BG <= -max v_FG``, with equality only
    for ``k = 2``), so background and the best foreground class are never
    both positive.

    Args:
        foreground: ``(N, k-1, ...)`` foreground logits.
        background_index: Where the background goes in the k-vector,
            ``0 <= background_index <= k-1``.

    Returns:
        Tensor: ``(N, k, ...)`` in the dtype of ``foreground`` (the
        logsumexp is taken in at least float32).
    """
    if foreground.dim() < 2 or foreground.shape[1] < 1:
        raise ValueError('foreground logits must be (N, k-1, ...) with '
                         f'k-1 >= 1, got {tuple(foreground.shape)}')
    check_background_index(background_index, foreground.shape[1] + 1)
    work = foreground if foreground.dtype in (
        torch.float32, torch.float64) else foreground.float()
    background = -torch.logsumexp(work, dim=1, keepdim=True)
    return torch.cat([
        foreground[:, :background_index],
        background.to(foreground.dtype), foreground[:, background_index:]
    ], dim=1)


def foreground_logits(logits: Tensor, background_index: int) -> Tensor:
    """The k-1 foreground logits of a k-vector: the inverse of
    :func:`implicit_background_logits`.

    Args:
        logits: ``(N, k, ...)`` logits with the background (IBE eq. 5) as
            class ``background_index``.
        background_index: The background's position, ``0 <=
            background_index <= k-1`` (not validated here).

    Returns:
        Tensor: ``(N, k-1, ...)``, the same dtype and device.
    """
    return torch.cat(
        [logits[:, :background_index], logits[:, background_index + 1:]],
        dim=1)
