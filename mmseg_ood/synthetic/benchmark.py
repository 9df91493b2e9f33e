"""Write the synthetic OOD benchmark to disk.

Layout of ``OUT/<variant>/`` (``variant`` is ``street`` or ``objects``)::

    images/{train,val}/NNNN.png          RGB images
    annotations/{train,val}/NNNN.png     class indices (uint8), mmseg layout
    ood/images/NNNN.png                  scenes with unseen objects
    ood/labels_masks/NNNN_labels_semantic.png
                                         SMIYC labels: 0 ID, 1 OOD, 255 void
    image_ood/gwn/NNNN.png               Gaussian white noise images
    image_ood/textures/NNNN.png          procedural textures
    outlier_proxy/images/NNNN.png        outlier proxy for OOD training
    outlier_proxy/annotations/NNNN.png   254 on proxy objects, 255 elsewhere
    meta.json                            generator version, seed, counts,
                                         classes and palette

Each image is drawn from its own generator seeded by
``(seed, variant, split, index)``, so the same seed gives byte-identical
files, and changing one split's size leaves the others unchanged.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Sequence

import cv2
import numpy as np

from ..errors import InvalidValueError
from ..labels import ID_LABEL, IGNORE_INDEX, OOD_LABEL
from . import textures as tx
from .objects import OBJECTS_CLASSES, OBJECTS_PALETTE, render_objects
from .outlier_images import render_outlier_proxy
from .street import (STREET_CLASSES, STREET_PALETTE, apply_camera,
                     place_unseen_objects, render_street)

GENERATOR_VERSION = 2
VARIANTS = ('street', 'objects')
_SPLIT_IDS = {
    'train': 0,
    'val': 1,
    'ood': 2,
    'gwn': 3,
    'textures': 4,
    'proxy': 5
}


@dataclass
class SyntheticSpec:
    """What to generate for one variant. Sizes are ``(height, width)``.

    Attributes:
        variant: ``'street'`` (Cityscapes-like, 6 classes) or ``'objects'``
            (VOC-like, background plus 5 object classes).
        seed: Seed of every image of the variant; with the split and the
            index it seeds each image's own generator.
        num_train: Images of the ID training split.
        num_val: Images of the ID validation split.
        num_ood: Images of the OOD split (scenes with 1-4 unseen objects,
            SMIYC labels).
        num_image_ood: Images of each whole-image OOD set (Gaussian white
            noise, textures).
        num_proxy: Images of the outlier proxy for OOD training.
        size: ``(height, width)``, both >= 32; ``None``: ``(128, 256)`` for
            ``street``, ``(128, 128)`` for ``objects``.

    Raises:
        ValueError: an unknown variant, a negative or non-int count, or a
            bad size.
    """
    variant: str
    seed: int = 0
    num_train: int = 400
    num_val: int = 100
    num_ood: int = 50
    num_image_ood: int = 20
    num_proxy: int = 100
    size: tuple = field(default=None)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise InvalidValueError(f'`variant` must be one of {VARIANTS}, '
                                    f'got {self.variant!r}')
        for name in ('num_train', 'num_val', 'num_ood', 'num_image_ood',
                     'num_proxy'):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise InvalidValueError(
                    f'`{name}` must be an int >= 0, got {value!r}')
        if self.size is None:
            self.size = (128, 256) if self.variant == 'street' else (128, 128)
        self.size = tuple(int(s) for s in self.size)
        if len(self.size) != 2 or min(self.size) < 32:
            raise InvalidValueError(
                '`size` must be (height, width) with both >= 32, '
                f'got {self.size!r}')


def _rng(spec: SyntheticSpec, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(
        [spec.seed, VARIANTS.index(spec.variant), _SPLIT_IDS[split], index])


def _write_rgb(path: str, img: np.ndarray) -> None:
    if not cv2.imwrite(path, cv2.cvtColor(tx.to_uint8(img),
                                          cv2.COLOR_RGB2BGR)):
        raise OSError(f'could not write image {path}')


def _write_label(path: str, label: np.ndarray) -> None:
    if not cv2.imwrite(path, label.astype(np.uint8)):
        raise OSError(f'could not write label {path}')


def _void_ring(mask: np.ndarray) -> np.ndarray:
    """One-pixel ring around ``mask``: the ambiguous, blurred boundary."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    return grown.astype(bool) & ~mask


def render_id(spec: SyntheticSpec, split: str, index: int):
    """Image ``(H, W, 3)`` float and label ``(H, W)`` uint8 of an ID split.

    Args:
        spec: The variant's settings.
        split: ``'train'`` or ``'val'``.
        index: The image's index in the split.

    Returns:
        tuple: ``(image, label)``: float32 RGB in ``[0, 1]`` and class
        indices.
    """
    rng = _rng(spec, split, index)
    h, w = spec.size
    if spec.variant == 'street':
        scene = render_street(rng, h, w)
        return apply_camera(rng, scene.image), scene.label
    img, lbl, _ = render_objects(rng, h, w)
    return apply_camera(rng, img), lbl


def render_ood(spec: SyntheticSpec, index: int):
    """Image and SMIYC label (0 ID, 1 OOD, 255 void) of the OOD split.

    Every image has at least one OOD pixel; a one-pixel ring around the
    unseen objects is void.

    Args:
        spec: The variant's settings.
        index: The image's index in the OOD split.

    Returns:
        tuple: ``(image, label)``: ``(H, W, 3)`` float32 RGB in ``[0, 1]``
        and ``(H, W)`` uint8 OOD labels.
    """
    rng = _rng(spec, 'ood', index)
    h, w = spec.size
    num = int(rng.integers(1, 5))
    if spec.variant == 'street':
        scene = render_street(rng, h, w)
        unseen = place_unseen_objects(rng, scene, num)
        img = scene.image
    else:
        img, _, unseen = render_objects(rng, h, w, num_unseen=num)
    if not unseen.any():  # fully occluded: paint one object on top again
        img, unseen = _force_unseen(rng, img, unseen)
    label = np.full((h, w), ID_LABEL, np.uint8)
    label[_void_ring(unseen)] = IGNORE_INDEX
    label[unseen] = OOD_LABEL
    return apply_camera(rng, img), label


def _force_unseen(rng, img, unseen):
    h, w = unseen.shape
    r = 0.1 * min(h, w)
    m = tx.polygon_mask((h, w), tx.star_points(w / 2, h * 0.7, r, r * 0.45,
                                               5, rng.uniform(0, np.pi)))
    img = img.copy()
    img[m] = (1.0, 0.0, 1.0)
    return img, unseen | m


def render_image_ood(spec: SyntheticSpec, kind: str, index: int):
    """A whole-image OOD sample: Gaussian white noise or a texture.

    Args:
        spec: The variant's settings.
        kind: ``'gwn'`` (Gaussian white noise, mean 0.5, sd 0.25, clipped)
            or ``'textures'`` (checker, stripes, dots or fractal noise in
            two random colours).
        index: The image's index in the set.

    Returns:
        np.ndarray: ``(H, W, 3)`` float32 RGB in ``[0, 1]``.
    """
    rng = _rng(spec, kind, index)
    h, w = spec.size
    if kind == 'gwn':
        return np.clip(rng.normal(0.5, 0.25, (h, w, 3)), 0, 1).astype(
            np.float32)
    period = rng.uniform(3, 16)
    angle = rng.uniform(0, np.pi)
    pattern = (tx.checker((h, w), period, angle),
               tx.stripes((h, w), period, angle),
               tx.dots((h, w), period, period * 0.35),
               tx.fractal_noise(rng, (h, w), period))[rng.integers(4)]
    img = tx.colorize(pattern, rng.uniform(0, 1, 3), rng.uniform(0, 1, 3))
    return apply_camera(rng, img)


def render_proxy(spec: SyntheticSpec, index: int):
    """Image and label (254 objects, 255 void) of the outlier proxy.

    Args:
        spec: The variant's settings (the proxy is the same kind of image
            for both variants).
        index: The image's index in the proxy set.

    Returns:
        tuple: ``(image, label)``: ``(H, W, 3)`` float32 RGB in ``[0, 1]``
        and ``(H, W)`` uint8.
    """
    rng = _rng(spec, 'proxy', index)
    img, label = render_outlier_proxy(rng, *spec.size)
    return apply_camera(rng, img), label


def _meta(spec: SyntheticSpec) -> dict:
    classes, palette = ((STREET_CLASSES, STREET_PALETTE)
                        if spec.variant == 'street' else
                        (OBJECTS_CLASSES, OBJECTS_PALETTE))
    meta = asdict(spec)
    meta['size'] = list(spec.size)
    meta.update(generator_version=GENERATOR_VERSION, classes=list(classes),
                palette=[list(p) for p in palette],
                ood_labels={'id': ID_LABEL, 'ood': OOD_LABEL,
                            'void': IGNORE_INDEX})
    return meta


def write_variant(out_dir: str, spec: SyntheticSpec,
                  overwrite: bool = False) -> str:
    """Generate one variant under ``out_dir/<variant>``; return that path.

    A directory whose ``meta.json`` matches ``spec`` is complete (the file is
    written last) and is left as it is unless ``overwrite``.

    Args:
        out_dir: The benchmark's root; the variant goes to
            ``out_dir/<variant>`` (layout in the module docstring).
        spec: What to generate.
        overwrite: Regenerate even when a complete, matching copy exists.

    Returns:
        str: ``out_dir/<variant>``.

    Raises:
        OSError: an image could not be written.
    """
    root = osp.join(out_dir, spec.variant)
    meta_path = osp.join(root, 'meta.json')
    meta = _meta(spec)
    if not overwrite and osp.isfile(meta_path):
        with open(meta_path) as f:
            if json.load(f) == meta:
                return root
    if osp.isfile(meta_path):
        os.remove(meta_path)  # incomplete until rewritten
    for sub in ('images/train', 'images/val', 'annotations/train',
                'annotations/val', 'ood/images', 'ood/labels_masks',
                'image_ood/gwn', 'image_ood/textures',
                'outlier_proxy/images', 'outlier_proxy/annotations'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    for split, count in (('train', spec.num_train), ('val', spec.num_val)):
        for i in range(count):
            img, lbl = render_id(spec, split, i)
            _write_rgb(osp.join(root, 'images', split, f'{i:04d}.png'), img)
            _write_label(osp.join(root, 'annotations', split, f'{i:04d}.png'),
                         lbl)
    for i in range(spec.num_ood):
        img, lbl = render_ood(spec, i)
        _write_rgb(osp.join(root, 'ood', 'images', f'{i:04d}.png'), img)
        _write_label(osp.join(root, 'ood', 'labels_masks',
                              f'{i:04d}_labels_semantic.png'), lbl)
    for kind in ('gwn', 'textures'):
        for i in range(spec.num_image_ood):
            _write_rgb(osp.join(root, 'image_ood', kind, f'{i:04d}.png'),
                       render_image_ood(spec, kind, i))
    for i in range(spec.num_proxy):
        img, lbl = render_proxy(spec, i)
        name = f'{i:04d}.png'
        _write_rgb(osp.join(root, 'outlier_proxy', 'images', name), img)
        _write_label(osp.join(root, 'outlier_proxy', 'annotations', name), lbl)
    with open(meta_path, 'w') as f:
        json.dump(meta, f, indent=2)
    return root


def make_synthetic_benchmark(out_dir: str, seed: int = 0,
                             variants: Sequence[str] = VARIANTS,
                             overwrite: bool = False,
                             **counts) -> dict:
    """Generate the synthetic OOD benchmark.

    Args:
        out_dir: Output directory; one sub-directory per variant.
        seed: Seed of every image; the same seed gives byte-identical files.
        variants: Any of ``'street'`` (Cityscapes-like, 6 classes) and
            ``'objects'`` (VOC-like, background 0 plus 5 object classes).
        overwrite: Regenerate even if a complete, matching copy exists.
        **counts: ``num_train``, ``num_val``, ``num_ood``, ``num_image_ood``,
            ``num_proxy`` and ``size`` as in :class:`SyntheticSpec`.

    Returns:
        dict: variant name -> its root directory.

    Example:
        >>> from mmseg_ood.synthetic import make_synthetic_benchmark
        >>> roots = make_synthetic_benchmark('data/synthetic', seed=0)
    """
    if isinstance(variants, str):
        variants = (variants, )
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise InvalidValueError(
            f'`variants` must be among {VARIANTS}, got {unknown}')
    return {
        v: write_variant(out_dir, SyntheticSpec(v, seed=seed, **counts),
                         overwrite)
        for v in variants
    }
