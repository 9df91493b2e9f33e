"""Order-preserving integer keys of float32 scores.

The streaming accumulators histogram scores by the bits of these keys, and
the SMIYC score transform and the operating point reuse them.
"""
import numpy as np


def order_keys(values: np.ndarray) -> np.ndarray:
    """float32 -> uint32 with the same order (IEEE-754 sign/magnitude trick).

    Positive floats get the sign bit set, negative floats are bit-inverted,
    so unsigned integer order equals float order. -0.0 becomes +0.0 first
    (they are equal, and must tie).

    Args:
        values: Scores of any shape; cast to float32 first.

    Returns:
        np.ndarray: uint32 keys of the shape of ``values``; NaNs get keys
        above +Inf (positive NaN) or below -Inf (negative NaN).
    """
    f = np.ascontiguousarray(values, dtype=np.float32) + np.float32(0.0)
    bits = f.view(np.uint32)
    # negative: flip all bits; positive: flip the sign bit only
    mask = (np.uint32(0) - (bits >> np.uint32(31))) | np.uint32(0x80000000)
    return bits ^ mask


def keys_to_values(keys: np.ndarray) -> np.ndarray:
    """Inverse of :func:`order_keys` (uint32 keys -> float32 values).

    Args:
        keys: Keys of any shape, cast to uint32.

    Returns:
        np.ndarray: float32 values of the shape of ``keys``; ``+0.0`` for
        the key of ``-0.0``.
    """
    keys = keys.astype(np.uint32)
    pos = (keys >> np.uint32(31)).astype(bool)
    bits = np.where(pos, keys & np.uint32(0x7FFFFFFF), ~keys)
    return bits.view(np.float32)
