"""Procedural textures and shapes for the synthetic benchmark.

Every function takes a ``numpy.random.Generator`` (where it draws anything)
and returns float32 arrays in ``[0, 1]``; images are ``(H, W, 3)``, masks
``(H, W)`` bool. Only numpy and OpenCV are used, so the output is identical
for the same seed on any machine with the same library versions.
"""
from __future__ import annotations

import cv2
import numpy as np


def value_noise(rng: np.random.Generator, shape: tuple[int, int],
                cell: float) -> np.ndarray:
    """Smooth noise: a random grid of about ``cell`` pixels, bicubic upsampled.

    Args:
        rng: The image's generator; draws one uniform grid.
        shape: ``(H, W)`` of the output.
        cell: Grid spacing in pixels (larger = smoother), > 0.

    Returns:
        ``(H, W)`` float32, roughly in ``[0, 1]`` (clipped).
    """
    h, w = shape
    gh = max(2, int(np.ceil(h / cell)) + 2)
    gw = max(2, int(np.ceil(w / cell)) + 2)
    grid = rng.random((gh, gw), dtype=np.float32)
    big = cv2.resize(grid, (int(gw * cell), int(gh * cell)),
                     interpolation=cv2.INTER_CUBIC)
    return np.clip(big[:h, :w], 0.0, 1.0)


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int],
                  cell: float, octaves: int = 3) -> np.ndarray:
    """Sum of ``octaves`` value-noise layers, each at half the cell size.

    Layer ``i`` has amplitude ``2^-i`` and cell ``max(1, cell / 2^i)``; the
    sum is divided by the total amplitude.

    Args:
        rng: The image's generator.
        shape: ``(H, W)`` of the output.
        cell: Cell size of the coarsest layer, in pixels.
        octaves: Number of layers, >= 1.

    Returns:
        np.ndarray: ``(H, W)`` float32 in ``[0, 1]``.
    """
    out = np.zeros(shape, np.float32)
    amp, total = 1.0, 0.0
    for i in range(octaves):
        out += amp * value_noise(rng, shape, max(1.0, cell / 2**i))
        total += amp
        amp *= 0.5
    return out / total


def stripes(shape: tuple[int, int], period: float, angle: float,
            phase: float = 0.0) -> np.ndarray:
    """Square-wave stripes of the given period (pixels) and angle (radians).

    Args:
        shape: ``(H, W)`` of the output.
        period: Width of one dark plus one light stripe, in pixels.
        angle: Direction across the stripes, in radians (0: vertical
            stripes).
        phase: Offset along that direction, in pixels.

    Returns:
        np.ndarray: ``(H, W)`` float32 of 0 and 1.
    """
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    t = xx * np.cos(angle) + yy * np.sin(angle) + phase
    return ((t / period) % 1.0 < 0.5).astype(np.float32)


def checker(shape: tuple[int, int], period: float, angle: float) -> np.ndarray:
    """Checkerboard of the given square size (pixels), rotated by ``angle``.

    Args:
        shape: ``(H, W)`` of the output.
        period: Side of one square, in pixels.
        angle: Rotation in radians.

    Returns:
        np.ndarray: ``(H, W)`` float32 of 0 and 1.
    """
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(
        np.float32)


def dots(shape: tuple[int, int], period: float, radius: float) -> np.ndarray:
    """A regular grid of discs of ``radius`` every ``period`` pixels.

    Args:
        shape: ``(H, W)`` of the output.
        period: Distance between disc centres, in pixels, both axes.
        radius: Disc radius in pixels.

    Returns:
        np.ndarray: ``(H, W)`` float32, 1 on the discs, 0 elsewhere.
    """
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    dy = (yy % period) - period / 2
    dx = (xx % period) - period / 2
    return (dx**2 + dy**2 <= radius**2).astype(np.float32)


def colorize(pattern: np.ndarray, color_a, color_b) -> np.ndarray:
    """Blend two RGB colours by a ``(H, W)`` pattern in ``[0, 1]``.

    Args:
        pattern: ``(H, W)`` weights; 0 gives ``color_a``, 1 ``color_b``.
        color_a: RGB triple in ``[0, 1]``.
        color_b: RGB triple in ``[0, 1]``.

    Returns:
        np.ndarray: ``(H, W, 3)`` float32 image.
    """
    a = np.asarray(color_a, np.float32)
    b = np.asarray(color_b, np.float32)
    return pattern[..., None] * b + (1.0 - pattern[..., None]) * a


def jitter_color(rng: np.random.Generator, color, amount: float) -> np.ndarray:
    """Add uniform noise of ``amount`` to each RGB channel of ``color``.

    Args:
        rng: The image's generator; draws 3 values.
        color: RGB triple in ``[0, 1]``.
        amount: Half-width of the uniform noise, per channel.

    Returns:
        np.ndarray: ``(3,)`` float32, clipped to ``[0, 1]``.
    """
    c = np.asarray(color, np.float32) + rng.uniform(-amount, amount, 3)
    return np.clip(c, 0.0, 1.0).astype(np.float32)


def polygon_mask(shape: tuple[int, int], points) -> np.ndarray:
    """Filled polygon; ``points`` are ``(x, y)`` pixel coordinates.

    Args:
        shape: ``(H, W)`` of the mask.
        points: ``(n, 2)`` vertices ``(x, y)`` in pixels; sub-pixel
            positions are kept to 1/16 pixel (OpenCV's ``shift=4``).

    Returns:
        np.ndarray: ``(H, W)`` bool mask.
    """
    mask = np.zeros(shape, np.uint8)
    pts = np.round(np.asarray(points, np.float64) * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def ellipse_mask(shape: tuple[int, int], cx: float, cy: float, rx: float,
                 ry: float, angle: float = 0.0) -> np.ndarray:
    """Filled ellipse centred at ``(cx, cy)``, radii ``rx, ry``, angle in
    radians.

    Args:
        shape: ``(H, W)`` of the mask.
        cx: Centre column, in pixels.
        cy: Centre row, in pixels.
        rx: Radius along the rotated x axis, in pixels (at least 0.5 is
            used).
        ry: Radius along the rotated y axis, in pixels (at least 0.5).
        angle: Rotation in radians.

    Returns:
        np.ndarray: ``(H, W)`` bool mask.
    """
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    x, y = xx - cx, yy - cy
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = x * ca + y * sa, -x * sa + y * ca
    return (u / max(rx, 0.5))**2 + (v / max(ry, 0.5))**2 <= 1.0


def star_points(cx: float, cy: float, r_out: float, r_in: float, n: int,
                angle: float) -> np.ndarray:
    """Vertices of an ``n``-pointed star.

    Args:
        cx: Centre ``x`` (column), in pixels.
        cy: Centre ``y`` (row), in pixels.
        r_out: Radius of the points.
        r_in: Radius of the notches between them.
        n: Number of points.
        angle: Direction of the first point, in radians.

    Returns:
        np.ndarray: ``(2 n, 2)`` vertices ``(x, y)``, for
        :func:`polygon_mask`.
    """
    t = angle + np.arange(2 * n) * np.pi / n
    r = np.where(np.arange(2 * n) % 2 == 0, r_out, r_in)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def random_polygon_points(rng: np.random.Generator, cx: float, cy: float,
                          radius: float, n: int) -> np.ndarray:
    """An irregular star-shaped polygon with ``n`` vertices.

    Args:
        rng: The image's generator; draws ``2 n`` values.
        cx: Centre ``x`` (column), in pixels.
        cy: Centre ``y`` (row), in pixels.
        radius: Largest vertex distance from the centre; each vertex lies
            at 0.45 to 1 times it.
        n: Number of vertices.

    Returns:
        np.ndarray: ``(n, 2)`` vertices ``(x, y)`` ordered by angle.
    """
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * rng.uniform(0.45, 1.0, n)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; ``sigma <= 0`` returns the input unchanged.

    Args:
        img: ``(H, W)`` or ``(H, W, 3)`` float32 image.
        sigma: Standard deviation in pixels (the kernel size follows from
            it); borders are reflected.

    Returns:
        np.ndarray: The blurred image, same shape and dtype.
    """
    if sigma <= 0:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma),
                            borderType=cv2.BORDER_REFLECT)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """``[0, 1]`` float image to uint8 with rounding.

    Args:
        img: Float image of any shape; values outside ``[0, 1]`` are
            clipped.

    Returns:
        np.ndarray: uint8 image, ``round(255 img)``.
    """
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
