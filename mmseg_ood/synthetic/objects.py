"""VOC-like scenes: textured background (index 0) and five object classes.

Each class has its own shape and a colour family, with jitter, texture and
occlusion, so that the background is a real, varied class (what IBE and
SCrIBE estimate implicitly). The OOD split adds objects of unseen shapes
(stars, irregular polygons) in unseen textures.
"""
from __future__ import annotations

import numpy as np

from ..errors import InvalidValueError
from . import textures as tx

OBJECTS_CLASSES = ('background', 'disk', 'box', 'triangle', 'ring', 'cross')
OBJECTS_PALETTE = ([0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
                   [0, 0, 128], [128, 0, 128])
_CLASS_COLORS = {1: (0.85, 0.2, 0.15), 2: (0.15, 0.3, 0.85),
                 3: (0.9, 0.8, 0.1), 4: (0.15, 0.75, 0.3),
                 5: (0.6, 0.2, 0.75)}


def _shape_mask(rng, shape, cls, cx, cy, r):
    angle = rng.uniform(0, 2 * np.pi)
    if cls == 1:
        return tx.ellipse_mask(shape, cx, cy, r, r * rng.uniform(0.8, 1.0),
                               angle)
    if cls == 2:
        a, b = r, r * rng.uniform(0.6, 1.0)
        pts = np.array([[-a, -b], [a, -b], [a, b], [-a, b]])
        rot = np.array([[np.cos(angle), -np.sin(angle)],
                        [np.sin(angle), np.cos(angle)]])
        return tx.polygon_mask(shape, pts @ rot.T + (cx, cy))
    if cls == 3:
        t = angle + np.arange(3) * 2 * np.pi / 3
        return tx.polygon_mask(shape, np.stack(
            [cx + r * np.cos(t), cy + r * np.sin(t)], 1))
    if cls == 4:
        return tx.ellipse_mask(shape, cx, cy, r, r) & ~tx.ellipse_mask(
            shape, cx, cy, r * 0.55, r * 0.55)
    if cls == 5:
        t = r * 0.33
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        return ((np.abs(u) <= r) & (np.abs(v) <= t)) | (
            (np.abs(v) <= r) & (np.abs(u) <= t))
    raise InvalidValueError(f'unknown object class {cls}')


def render_objects(rng: np.random.Generator, height: int = 128,
                   width: int = 128, num_unseen: int = 0):
    """Render one objects scene.

    Args:
        rng: The image's generator; everything is drawn from it.
        height: Image height in pixels.
        width: Image width in pixels.
        num_unseen: Number of unseen objects (stars, irregular polygons)
            to place among the 1-4 ID objects; their pixels are labelled
            background (0) and returned in the mask.

    Returns:
        tuple: image ``(H, W, 3)`` float in [0, 1], label ``(H, W)`` uint8 in
        ``OBJECTS_CLASSES`` indices, and the bool mask of unseen objects
        (empty when ``num_unseen`` is 0).
    """
    shape = (height, width)
    base = tx.jitter_color(rng, rng.uniform(0.25, 0.75, 3) * 0.8, 0.05)
    pattern = tx.fractal_noise(rng, shape, cell=rng.uniform(4, 24))
    img = tx.colorize(pattern, base * 0.6, np.clip(base * 1.3, 0, 1))
    if rng.random() < 0.4:  # low-contrast stripes in the background
        img *= 0.9 + 0.1 * tx.stripes(shape, rng.uniform(6, 16),
                                      rng.uniform(0, np.pi))[..., None]
    lbl = np.zeros(shape, np.uint8)
    unseen = np.zeros(shape, bool)
    n = int(rng.integers(1, 5))
    kinds = [int(rng.integers(1, 6)) for _ in range(n)] + [-1] * num_unseen
    rng.shuffle(kinds)
    side = min(shape)
    for cls in kinds:
        r = rng.uniform(0.08, 0.25) * side
        cx = rng.uniform(r * 0.5, width - r * 0.5)
        cy = rng.uniform(r * 0.5, height - r * 0.5)
        if cls > 0:
            m = _shape_mask(rng, shape, cls, cx, cy, r)
            color = tx.jitter_color(rng, _CLASS_COLORS[cls], 0.1)
            shade = 0.8 + 0.2 * tx.value_noise(rng, shape, r / 2)
            img[m] = (color * shade[..., None])[m]
            lbl[m] = cls
            unseen &= ~m
        else:
            pts = (tx.star_points(cx, cy, r, r * 0.45,
                                  int(rng.integers(5, 8)),
                                  rng.uniform(0, np.pi))
                   if rng.random() < 0.5 else
                   tx.random_polygon_points(rng, cx, cy, r,
                                            int(rng.integers(5, 9))))
            m = tx.polygon_mask(shape, pts)
            pattern = tx.checker(shape, rng.uniform(2, 5),
                                 rng.uniform(0, np.pi))
            img[m] = tx.colorize(pattern, rng.uniform(0, 1, 3),
                                 rng.uniform(0, 1, 3))[m]
            lbl[m] = 0
            unseen |= m
    return np.clip(img, 0, 1).astype(np.float32), lbl, unseen
