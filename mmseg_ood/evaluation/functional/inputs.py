"""Validation and formatting of (scores, labels) pairs."""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ...errors import InvalidValueError, MissingFieldError
from ...labels import IGNORE_INDEX

#: Label of void pixels in :func:`flat_ood_labels` output.
VOID = 2


def to_numpy(x) -> np.ndarray:
    """Tensor (any device) or array-like -> numpy array.

    Args:
        x: A ``torch.Tensor`` (detached and copied to the CPU), a numpy
            array (returned as it is) or anything ``np.asarray`` takes.

    Returns:
        np.ndarray: The values, same shape and dtype; a tensor of a dtype
        numpy lacks (``bfloat16`` from mixed precision) becomes float32
        (exactly: every bfloat16 value is a float32 value).
    """
    if hasattr(x, 'detach'):
        x = x.detach().cpu()  # copied in its own dtype, widened on the host
        try:
            x = x.numpy()
        except TypeError:  # "unsupported ScalarType BFloat16"
            x = x.float().numpy()
    return np.asarray(x)


def sample_ood_labels(sample: dict, label_key: str, owner: str,
                      hint: str = '') -> np.ndarray:
    """The OOD label map (0 ID, 1 OOD, 255 void) of one data sample.

    Args:
        sample: A data sample as a dict (``data_sample.to_dict()``).
        label_key: Its field holding the map (``gt_ood_map``): a
            ``PixelData`` or its dict, ``data`` of shape ``(1, H, W)``.
        owner: Who reads it, for the message.
        hint: Appended to the message when the field is missing.

    Returns:
        np.ndarray: ``(H, W)``, the labels as stored.

    Raises:
        MissingFieldError: ``sample`` has no ``label_key``.
    """
    if label_key not in sample:
        raise MissingFieldError(
            f'{owner}: data sample has no {label_key!r} OOD label map '
            f'(0 ID, 1 OOD, 255 void){hint}')
    labels = sample[label_key]
    return to_numpy(labels['data'] if isinstance(labels, dict)
                    else labels.data).squeeze(0)


def flat_ood_labels(labels, ignore_index: int = IGNORE_INDEX,
                    name: str = 'scores') -> np.ndarray:
    """Flatten and check an OOD label map.

    Args:
        labels: 0 (ID), 1 (OOD) or ``ignore_index`` (void), any shape.
        ignore_index: Void label.
        name: Scorer name for the message.

    Returns:
        1-D uint8: 0 ID, 1 OOD, :data:`VOID` (2) void.

    Raises:
        ValueError: a label is not 0, 1 or ``ignore_index``.
    """
    y = to_numpy(labels).reshape(-1)
    void = y == ignore_index
    nvoid = np.count_nonzero(void)
    if y.dtype.kind == 'u' and ignore_index > 1:
        # the labels above 1 are all void: two counts, no mask of the rest
        wrong = np.count_nonzero(y > 1) != nvoid
    else:
        wrong = True
    if wrong:
        bad = (y != 0) & (y != 1)
        bad &= ~void
        if bad.any():
            found = sorted(set(np.unique(y[bad]).tolist()))[:10]
            raise InvalidValueError(
                f'{name}: OOD labels must be 0 (ID), 1 (OOD) or '
                f'{ignore_index} (void), found {found}')
    if not nvoid:
        return y.astype(np.uint8)
    if y.dtype.kind in 'iu':
        # integers cast to uint8 modulo 256: the void pixels all hold
        # ignore_index mod 256, which one subtraction (mod 256) makes VOID;
        # several times faster than a masked assignment
        out = y.astype(np.uint8)
        out -= void.view(np.uint8) * np.uint8((ignore_index - VOID) % 256)
        return out
    return np.where(void, np.uint8(VOID), y).astype(np.uint8)


def check_finite(scores: np.ndarray, labels: np.ndarray,
                 name: str = 'scores') -> bool:
    """Whether every score is finite; raise if a non-void one is not.

    Args:
        scores: 1-D scores.
        labels: 1-D output of :func:`flat_ood_labels`.
        name: Scorer name for the message.

    Returns:
        ``True`` if all scores are finite, ``False`` if only void pixels
        hold NaN / Inf (the caller must then drop the void pixels).

    Raises:
        ValueError: NaN / Inf on a non-void pixel (naming ``name``).
    """
    finite = np.isfinite(scores)
    if finite.all():
        return True
    n = int((~finite & (labels != VOID)).sum())
    if n:
        raise InvalidValueError(
            f'scorer {name!r} produced {n} NaN/Inf values on '
            'non-void pixels; OOD metrics need finite scores')
    return False


def valid_scores_and_labels(scores, labels, ignore_index: int = IGNORE_INDEX,
                            name: str = 'scores'
                            ) -> Tuple[np.ndarray, np.ndarray]:
    """Flatten, drop void pixels, check values.

    Args:
        scores: OOD scores (higher = more OOD), any shape, tensor or array.
        labels: 0 (ID), 1 (OOD) or ``ignore_index`` (void), the shape of
            ``scores``.
        ignore_index: Void label.
        name: Scorer name for the messages.

    Returns:
        tuple: float scores (float32 stays float32, integers become
        float64) and uint8 labels (0/1) of the non-void pixels.

    Raises:
        ValueError: shapes differ, a label is not 0, 1 or ``ignore_index``,
            or a score is NaN / Inf (naming ``name``).
    """
    s, y = flat_scores_and_labels(scores, labels, ignore_index, name)
    valid = y != VOID
    if not valid.all():
        s, y = s[valid], y[valid]
    return s, y


def flat_scores_and_labels(scores, labels, ignore_index: int = IGNORE_INDEX,
                           name: str = 'scores'
                           ) -> Tuple[np.ndarray, np.ndarray]:
    """Flatten and check values, keeping void pixels (labelled
    :data:`VOID`) unless their scores are NaN / Inf.

    Args:
        scores: OOD scores, any shape, tensor or array.
        labels: 0 (ID), 1 (OOD) or ``ignore_index`` (void), the shape of
            ``scores``.
        ignore_index: Void label.
        name: Scorer name for the messages.

    Returns:
        tuple: 1-D float scores and uint8 labels (0, 1, :data:`VOID`).

    Raises:
        ValueError: as :func:`valid_scores_and_labels`.
    """
    s, y = to_numpy(scores), to_numpy(labels)
    if s.shape != y.shape:
        raise InvalidValueError(
            f'{name}: scores {s.shape} and labels {y.shape} '
            'must have the same shape')
    y = flat_ood_labels(y, ignore_index, name)
    s = s.reshape(-1)
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    if not check_finite(s, y, name):
        valid = y != VOID
        s, y = s[valid], y[valid]
    return s, y
