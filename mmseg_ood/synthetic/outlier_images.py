"""Synthetic outlier proxy: the synthetic stand-in for the COCO proxy.

Like the COCO proxy of the entropy-maximization paper (whole images of
other scenes, instance pixels labelled 254 and the rest 255), each image is
a textured scene of another world with 1-4 objects labelled 254. The
objects are kept distinct from everything the test splits contain: their
shapes are crescents, chevrons and frames (the OOD test objects are stars,
irregular polygons, ellipses and rings; the ID classes disks, boxes,
triangles, rings and crosses), and their surfaces are smooth colour
gradients with noise (the test objects are checkered, striped, dotted or
noise-textured in their own colours).
"""
from __future__ import annotations

import numpy as np

from ..labels import IGNORE_INDEX, PROXY_OOD_INDEX
from . import textures as tx

PROXY_SHAPES = ('crescent', 'chevron', 'frame')


def _proxy_mask(rng: np.random.Generator, shape, kind: str, cx: float,
                cy: float, r: float) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    if kind == 'crescent':
        off = r * rng.uniform(0.35, 0.6)
        return tx.ellipse_mask(shape, cx, cy, r, r) & ~tx.ellipse_mask(
            shape, cx + off * np.cos(angle), cy + off * np.sin(angle),
            r * 0.85, r * 0.85)
    rot = np.array([[np.cos(angle), -np.sin(angle)],
                    [np.sin(angle), np.cos(angle)]])
    if kind == 'chevron':
        t = rng.uniform(0.3, 0.5)
        pts = np.array([[-r, -r], [0, r * (t - 0.2)], [r, -r],
                        [r, -r * (1 - 2 * t)], [0, r],
                        [-r, -r * (1 - 2 * t)]])
        return tx.polygon_mask(shape, pts @ rot.T + (cx, cy))
    a, b = r, r * rng.uniform(0.6, 1.0)
    outer = np.array([[-a, -b], [a, -b], [a, b], [-a, b]])
    inner = outer * rng.uniform(0.45, 0.7)
    return tx.polygon_mask(shape, outer @ rot.T + (cx, cy)) & \
        ~tx.polygon_mask(shape, inner @ rot.T + (cx, cy))


def render_outlier_proxy(rng: np.random.Generator, height: int,
                         width: int):
    """Render one proxy image.

    Args:
        rng: The image's generator; everything is drawn from it.
        height: Image height in pixels.
        width: Image width in pixels.

    Returns:
        tuple: image ``(H, W, 3)`` float in [0, 1] and label ``(H, W)``
        uint8 with ``PROXY_OOD_INDEX`` on objects and ``IGNORE_INDEX``
        elsewhere; at least one pixel is an object.
    """
    shape = (height, width)
    c1, c2 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (xx * np.cos(angle) + yy * np.sin(angle))
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    img = tx.colorize(0.6 * ramp + 0.4 * tx.fractal_noise(
        rng, shape, cell=rng.uniform(6, 30)), c1, c2)
    label = np.full(shape, IGNORE_INDEX, np.uint8)
    side = min(shape)
    for _ in range(int(rng.integers(1, 5))):
        kind = PROXY_SHAPES[int(rng.integers(len(PROXY_SHAPES)))]
        r = rng.uniform(0.08, 0.3) * side
        cx = rng.uniform(r * 0.5, width - r * 0.5)
        cy = rng.uniform(r * 0.5, height - r * 0.5)
        m = _proxy_mask(rng, shape, kind, cx, cy, r)
        if not m.any():
            m[int(min(cy, height - 1)), int(min(cx, width - 1))] = True
        a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        shade = tx.value_noise(rng, shape, max(r / 2, 1.0))
        surface = tx.colorize(np.clip(0.5 * ramp + 0.5 * shade, 0, 1), a, b)
        img[m] = surface[m]
        label[m] = PROXY_OOD_INDEX
    return np.clip(img, 0, 1).astype(np.float32), label
