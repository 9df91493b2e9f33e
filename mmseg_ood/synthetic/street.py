"""Cityscapes-like street scenes with unseen objects on the road.

A scene is drawn back to front: sky, buildings, vegetation, sidewalks, the
road (a trapezoid towards a vanishing point), vehicles on the road, and for
the OOD split, unseen objects on the road. Layout, textures, lighting, blur
and object scale vary per image; everything is drawn from one
``numpy.random.Generator``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import textures as tx

STREET_CLASSES = ('road', 'sidewalk', 'building', 'vegetation', 'sky',
                  'vehicle')
STREET_PALETTE = ([128, 64, 128], [244, 35, 232], [70, 70, 70],
                  [107, 142, 35], [70, 130, 180], [0, 0, 142])
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, VEHICLE = range(6)

# Vehicles come in these body colours only; unseen objects use the others.
VEHICLE_COLORS = ((0.75, 0.1, 0.1), (0.1, 0.2, 0.7), (0.9, 0.9, 0.9),
                  (0.08, 0.08, 0.08), (0.6, 0.62, 0.65))
OOD_COLORS = ((1.0, 0.0, 1.0), (1.0, 0.55, 0.0), (1.0, 0.95, 0.1),
              (0.0, 1.0, 0.9), (0.55, 0.0, 1.0), (0.6, 1.0, 0.0))


@dataclass
class Scene:
    """One rendered scene (:func:`render_street`).

    Attributes:
        image: ``(H, W, 3)`` float32 RGB in ``[0, 1]``.
        label: ``(H, W)`` uint8 class index into :data:`STREET_CLASSES`.
        road: ``(H, W)`` bool, the road pixels (where unseen objects are
            placed).
        horizon: Row of the horizon, in pixels (a float).
    """
    image: np.ndarray
    label: np.ndarray
    road: np.ndarray
    horizon: float


def _paint(scene_img, scene_lbl, mask, texture, cls):
    scene_img[mask] = texture[mask]
    scene_lbl[mask] = cls


def render_street(rng: np.random.Generator, height: int = 128,
                  width: int = 256) -> Scene:
    """Render one street scene without unseen objects (lighting not applied).

    Args:
        rng: The image's generator; everything is drawn from it.
        height: Image height in pixels.
        width: Image width in pixels.

    Returns:
        Scene: image, semantic label in ``STREET_CLASSES`` indices, road mask.
    """
    h, w = height, width
    shape = (h, w)
    img = np.zeros((h, w, 3), np.float32)
    lbl = np.full(shape, SKY, np.uint8)
    horizon = rng.uniform(0.36, 0.52) * h

    # Sky: vertical gradient plus soft clouds.
    top = tx.jitter_color(rng, (0.35, 0.55, 0.85), 0.08)
    low = tx.jitter_color(rng, (0.7, 0.8, 0.92), 0.06)
    grad = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    grad = np.clip(grad / max(horizon / h, 1e-3), 0, 1)
    sky = tx.colorize(np.broadcast_to(grad, shape), top, low)
    clouds = tx.fractal_noise(rng, shape, cell=w / 6)
    clouds = np.clip((clouds - 0.55) * 3, 0, 1) * rng.uniform(0.2, 0.8)
    img[:] = tx.colorize(clouds, (0, 0, 0), (1, 1, 1)) * clouds[..., None] \
        + sky * (1 - clouds[..., None])

    # Buildings and trees along the horizon.
    x = -rng.uniform(0, 0.1) * w
    while x < w:
        bw = rng.uniform(0.08, 0.25) * w
        x0, x1 = int(max(0, x)), int(min(w, x + bw))
        if rng.random() < 0.65:  # building with a window grid
            top_y = horizon - rng.uniform(0.12, 0.36) * h
            y0, y1 = int(max(0, top_y)), int(horizon + 0.04 * h)
            m = np.zeros(shape, bool)
            m[y0:y1, x0:x1] = True
            wall = tx.jitter_color(rng, ((0.62, 0.52, 0.42),
                                         (0.5, 0.5, 0.52),
                                         (0.7, 0.64, 0.55))[rng.integers(3)],
                                   0.07)
            win = wall * rng.uniform(0.3, 0.55)
            period = rng.uniform(4, 8)
            pattern = tx.checker(shape, period, 0.0) * tx.stripes(
                shape, period, np.pi / 2)
            grain = tx.value_noise(rng, shape, 3.0)[..., None] * 0.12 - 0.06
            _paint(img, lbl, m, tx.colorize(pattern, wall, win) + grain,
                   BUILDING)
        else:  # tree crown: a union of blobs
            m = np.zeros(shape, bool)
            cx, r = (x0 + x1) / 2, rng.uniform(0.06, 0.14) * h + bw * 0.2
            for _ in range(rng.integers(2, 5)):
                m |= tx.ellipse_mask(shape, cx + rng.normal(0, r * 0.5),
                                     horizon - rng.uniform(0.3, 1.2) * r,
                                     r * rng.uniform(0.6, 1.0),
                                     r * rng.uniform(0.6, 1.0))
            m[int(horizon):] = False
            leaf = tx.jitter_color(rng, (0.2, 0.45, 0.12), 0.06)
            dark = leaf * 0.45
            pattern = tx.fractal_noise(rng, shape, cell=3.0, octaves=2)
            _paint(img, lbl, m, tx.colorize(pattern, dark, leaf), VEGETATION)
        x += bw + rng.uniform(-0.02, 0.05) * w

    # Ground: vegetation (grass / hedges) far out, sidewalks, road.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ground = yy >= horizon
    grass = tx.colorize(tx.fractal_noise(rng, shape, cell=2.5, octaves=2),
                        tx.jitter_color(rng, (0.16, 0.35, 0.1), 0.05),
                        tx.jitter_color(rng, (0.35, 0.6, 0.2), 0.05))
    _paint(img, lbl, ground, grass, VEGETATION)

    vx = rng.uniform(0.3, 0.7) * w
    road_half = rng.uniform(0.3, 0.6) * w  # half width at the bottom row
    walk = road_half * rng.uniform(0.25, 0.6)
    cx_bottom = vx + rng.uniform(-0.15, 0.15) * w
    depth = np.clip((yy - horizon) / max(h - horizon, 1.0), 0.0, 1.0)
    centre = vx + (cx_bottom - vx) * depth
    dist = np.abs(xx - centre)
    road = ground & (dist <= road_half * depth)
    sidewalk = ground & ~road & (dist <= (road_half + walk) * depth)
    tiles = tx.checker(shape, rng.uniform(3, 6), rng.uniform(-0.3, 0.3))
    walk_col = tx.jitter_color(rng, (0.72, 0.66, 0.66), 0.05)
    _paint(img, lbl, sidewalk, tx.colorize(tiles, walk_col, walk_col * 0.85),
           SIDEWALK)
    asphalt = tx.jitter_color(rng, (0.3, 0.3, 0.32), 0.05)
    grain = tx.value_noise(rng, shape, 1.5)
    road_tex = tx.colorize(grain, asphalt * 0.85, asphalt * 1.15)
    # dashed centre line
    dash = (np.abs(xx - centre) <= 0.012 * w * depth + 0.3) & (
        ((yy - horizon) / 6.0 % 2) < 1.0)
    road_tex[dash] = (0.9, 0.9, 0.85)
    _paint(img, lbl, road, road_tex, ROAD)

    # Vehicles, far ones first.
    n_cars = rng.integers(0, 4)
    ys = np.sort(rng.uniform(horizon + 0.08 * h, h + 0.1 * h, n_cars))
    for y_bot in ys:
        d = (y_bot - horizon) / max(h - horizon, 1.0)
        cw = rng.uniform(0.18, 0.3) * w * d + 3
        ch = cw * rng.uniform(0.55, 0.8)
        cxv = vx + (cx_bottom - vx) * d + rng.uniform(
            -0.7, 0.7) * road_half * d
        body = np.zeros(shape, bool)
        y0, y1 = int(y_bot - ch), int(min(h, y_bot))
        x0, x1 = int(max(0, cxv - cw / 2)), int(min(w, cxv + cw / 2))
        if y1 <= y0 or x1 <= x0:
            continue
        body[y0:y1, x0:x1] = True
        color = tx.jitter_color(
            rng, VEHICLE_COLORS[rng.integers(len(VEHICLE_COLORS))], 0.05)
        car = np.broadcast_to(color, (h, w, 3)).copy()
        car *= (0.85 + 0.15 * tx.value_noise(rng, shape, 4.0))[..., None]
        window = (yy >= y0 + 0.12 * ch) & (yy < y0 + 0.45 * ch) & \
            (xx >= x0 + 0.12 * cw) & (xx < x1 - 0.12 * cw)
        car[window] = (0.15, 0.2, 0.25)
        wheels = (yy >= y1 - 0.22 * ch) & ((xx < x0 + 0.25 * cw) |
                                           (xx >= x1 - 0.25 * cw))
        car[wheels] = (0.05, 0.05, 0.05)
        _paint(img, lbl, body, car, VEHICLE)

    return Scene(img, lbl, road, horizon)


def place_unseen_objects(rng: np.random.Generator, scene: Scene,
                         num: int) -> np.ndarray:
    """Paint ``num`` unseen objects onto the road of ``scene`` in place.

    Objects have shapes (stars, irregular polygons, ellipses, rings),
    textures (checkers, stripes, dots) and colours that no training scene
    contains, and radii from 2 % to 18 % of the image height.

    Args:
        rng: The image's generator.
        scene: The scene to paint on; its ``image`` is changed in place,
            its ``label`` is not.
        num: Number of objects; fewer are placed if the scene has no road.

    Returns:
        ``(H, W)`` bool mask of the pixels covered by unseen objects.
    """
    h, w = scene.label.shape
    shape = (h, w)
    ood = np.zeros(shape, bool)
    road_y, road_x = np.nonzero(scene.road)
    for _ in range(num):
        if road_y.size == 0:
            break
        i = rng.integers(road_y.size)
        cy, cx = float(road_y[i]), float(road_x[i])
        d = np.clip((cy - scene.horizon) / max(h - scene.horizon, 1.0), 0.15,
                    1.0)
        r = float(np.exp(rng.uniform(np.log(0.02), np.log(0.18))) * h * d
                  + 1.5)
        kind = rng.integers(4)
        angle = rng.uniform(0, 2 * np.pi)
        if kind == 0:
            m = tx.polygon_mask(shape, tx.star_points(
                cx, cy - r, r, r * 0.45, int(rng.integers(4, 8)), angle))
        elif kind == 1:
            m = tx.polygon_mask(shape, tx.random_polygon_points(
                rng, cx, cy - r, r, int(rng.integers(5, 9))))
        elif kind == 2:
            m = tx.ellipse_mask(shape, cx, cy - r * 0.6, r,
                                r * rng.uniform(0.4, 1.0), angle)
        else:
            m = tx.ellipse_mask(shape, cx, cy - r, r, r) & ~tx.ellipse_mask(
                shape, cx, cy - r, r * 0.5, r * 0.5)
        if not m.any():  # tiny objects must cover at least one pixel
            m[int(min(cy, h - 1)), int(min(cx, w - 1))] = True
        c1 = OOD_COLORS[rng.integers(len(OOD_COLORS))]
        c2 = tx.jitter_color(rng, OOD_COLORS[rng.integers(len(OOD_COLORS))],
                             0.2) * rng.uniform(0.2, 1.0)
        period = rng.uniform(2, 6)
        pattern = (tx.checker(shape, period, angle),
                   tx.stripes(shape, period, angle),
                   tx.dots(shape, period * 1.5, period * 0.5),
                   tx.value_noise(rng, shape, period))[rng.integers(4)]
        scene.image[m] = tx.colorize(pattern, c1, c2)[m]
        ood |= m
    return ood


def apply_camera(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Lighting (brightness, colour cast, gamma), blur and sensor noise.

    Args:
        rng: The image's generator.
        img: ``(H, W, 3)`` float RGB in ``[0, 1]``.

    Returns:
        np.ndarray: ``(H, W, 3)`` float32 in ``[0, 1]``; a new array.
    """
    out = img * rng.uniform(0.65, 1.3) * rng.uniform(0.9, 1.1, 3)
    out = np.clip(out, 0, 1) ** rng.uniform(0.8, 1.25)
    if rng.random() < 0.5:
        out = tx.gaussian_blur(out.astype(np.float32), rng.uniform(0.3, 1.2))
    out = out + rng.normal(0, rng.uniform(0.005, 0.03), out.shape)
    return np.clip(out, 0, 1).astype(np.float32)
