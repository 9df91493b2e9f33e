"""Validation and formatting of (scores, labels) pairs."""
from __future__ import annotations

import numpy as np


def to_numpy(x) -> np.ndarray:
    """Tensor (any device) or array-like -> numpy array."""
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def valid_scores_and_labels(scores, labels, ignore_index: int = 255,
                            name: str = 'scores'):
    """Flatten, drop void pixels, check values.

    Returns:
        tuple: float64 scores and uint8 labels (0/1) of the non-void pixels.

    Raises:
        ValueError: shapes differ, a label is not 0, 1 or ``ignore_index``,
            or a score is NaN / Inf (naming ``name``).
    """
    s, y = to_numpy(scores), to_numpy(labels)
    if s.shape != y.shape:
        raise ValueError(f'{name}: scores {s.shape} and labels {y.shape} '
                         'must have the same shape')
    s, y = s.reshape(-1), y.reshape(-1)
    valid = y != ignore_index
    bad = valid & (y != 0) & (y != 1)
    if bad.any():
        found = sorted(set(np.unique(y[bad]).tolist()))[:10]
        raise ValueError(f'{name}: OOD labels must be 0 (ID), 1 (OOD) or '
                         f'{ignore_index} (void), found {found}')
    if not valid.all():
        s, y = s[valid], y[valid]
    y = y.astype(np.uint8, copy=False)
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    finite = np.isfinite(s)
    if not finite.all():
        n = int((~finite).sum())
        raise ValueError(f'scorer {name!r} produced {n} NaN/Inf values on '
                         'non-void pixels; OOD metrics need finite scores')
    return s, y
