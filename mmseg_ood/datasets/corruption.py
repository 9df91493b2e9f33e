"""ImageNet-C corruptions as a deterministic mmseg test transform.

SCrIBE (sec. 4, "Robustness to Corrupted Input") tests every model on the
first 15 corruptions of the ImageNet-C toolkit (Hendrycks & Dietterich,
ICLR 2019) at severities 1-5, all models "on the same corrupted input
simultaneously". The corruptions come from the ``imagecorruptions`` module
(installed by its maintained fork ``imagecorruptions-imaug``); most draw
from NumPy's global random generator, ``glass_blur`` and ``impulse_noise``
from a seed argument. :class:`ImageCorruption` seeds both from the image
path, the corruption and the severity, and leaves the global generator as
it found it: the same image, corruption and severity give the same pixels
in every run, every worker and for every model.

Where it goes: after ``LoadImageFromFile`` and before any resize
(:func:`with_corruption` puts it there). The toolkit's parameters (noise
scale, blur radius in pixels, frost and snow textures) are calibrated on
images as stored, and the paper corrupted the validation files themselves;
corrupting after a test-time resize would change what a severity means
with the model's input size, and under test-time augmentation every scale
would see a differently corrupted image.
"""
from __future__ import annotations

import copy
import hashlib
import os
import os.path as osp
from typing import List, Optional, Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ..errors import InvalidValueError
from ..utils.arguments import strict_arguments

__all__ = ['CORRUPTIONS', 'EXTRA_CORRUPTIONS', 'ImageCorruption',
           'corruption_seed', 'with_corruption']

#: The first 15 ImageNet-C corruptions (noise, blur, weather, digital), in
#: the toolkit's order: the benchmark's set.
CORRUPTIONS = ('gaussian_noise', 'shot_noise', 'impulse_noise',
               'defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur',
               'snow', 'frost', 'fog', 'brightness', 'contrast',
               'elastic_transform', 'pixelate', 'jpeg_compression')
#: The toolkit's 4 validation corruptions, accepted too.
EXTRA_CORRUPTIONS = ('speckle_noise', 'gaussian_blur', 'spatter',
                     'saturate')
#: Corruptions that take their randomness from a ``seed`` argument.
_SEEDED = ('glass_blur', 'impulse_noise')


def corruption_seed(img_path: str, corruption: str, severity: int,
                    seed: int = 0) -> int:
    """A 32-bit seed from the image path (normalized), the corruption, the
    severity and a base ``seed``.

    The first 4 bytes (little-endian) of the SHA-256 of
    ``'<path>|<corruption>|<severity>|<seed>'``: the same inputs give the
    same seed in every process, on every platform.

    Args:
        img_path: The image's path (normalized with ``os.path.normpath``,
            so ``a/./b.png`` and ``a/b.png`` agree).
        corruption: The corruption's name.
        severity: The severity, 0-5.
        seed: Base seed; another value gives another draw.

    Returns:
        int: A seed in ``[0, 2**32)``.
    """
    key = f'{osp.normpath(str(img_path))}|{corruption}|{severity}|{seed}'
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4],
                          'little')


@TRANSFORMS.register_module()
@strict_arguments
class ImageCorruption(BaseTransform):
    """Corrupt ``results['img']`` with one ImageNet-C corruption.

    Required keys: ``img`` (``H x W x 3`` uint8, BGR as mmcv loads it, or
    ``H x W``), ``img_path``. Modified: ``img``. Added: ``corruption``
    (``'<name>@<severity>'``).

    Args:
        corruption: One of :data:`CORRUPTIONS` (or
            :data:`EXTRA_CORRUPTIONS`).
        severity: 1-5, or 0 for the image unchanged.
        seed: Base seed mixed into every image's seed (another value gives
            another draw of the same corruption).
        cache_dir: If given, each corrupted image is also written there
            (lossless PNG, named after the seed's inputs) and read back
            when the same image, corruption, severity and seed come again:
            several models, or a repeated run, corrupt each image once.

    Example:
        >>> test_pipeline = [
        ...     dict(type='LoadImageFromFile'),
        ...     dict(type='ImageCorruption', corruption='fog', severity=3),
        ...     dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
        ...     dict(type='LoadAnnotations'), dict(type='PackSegInputs')]

    References:
        Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to
        Common Corruptions and Perturbations", ICLR 2019 (ImageNet-C);
        SCrIBE, sec. 4 (the first 15 corruptions at severities 1-5).
    """

    def __init__(self, corruption: str, severity: int, seed: int = 0,
                 cache_dir: Optional[str] = None):
        if corruption not in CORRUPTIONS + EXTRA_CORRUPTIONS:
            raise InvalidValueError(
                f'`corruption` must be one of {list(CORRUPTIONS)} (or '
                f'{list(EXTRA_CORRUPTIONS)}), got {corruption!r}')
        if isinstance(severity, bool) or not isinstance(
                severity, (int, np.integer)) or not 0 <= severity <= 5:
            raise InvalidValueError('`severity` must be an int in 0..5 (0: '
                                    f'unchanged), got {severity!r}')
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InvalidValueError(f'`seed` must be an int, got {seed!r}')
        if cache_dir is not None and not isinstance(cache_dir, str):
            raise InvalidValueError(
                f'`cache_dir` must be a path, got {cache_dir!r}')
        self.corruption = corruption
        self.severity = int(severity)
        self.seed = int(seed)
        self.cache_dir = cache_dir

    def cache_path(self, img_path: str) -> str:
        """Where the corrupted ``img_path`` is cached."""
        key = hashlib.sha256(osp.normpath(str(img_path)).encode()).hexdigest()
        name = osp.splitext(osp.basename(img_path))[0]
        return osp.join(self.cache_dir, self.corruption, str(self.severity),
                        f'{self.seed}', f'{key[:16]}_{name}.png')

    def corrupt(self, img: np.ndarray, img_path: str) -> np.ndarray:
        """The corrupted copy of ``img`` (BGR or grey uint8)."""
        if self.severity == 0:
            return img
        from imagecorruptions import corrupt
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or (
                img.ndim == 3 and img.shape[2] != 3):
            raise InvalidValueError(
                f'ImageCorruption: {img_path}: expected an '
                'H x W x 3 or H x W uint8 image, got '
                f'{img.dtype} {img.shape}')
        if min(img.shape[:2]) < 32:
            raise InvalidValueError(
                f'ImageCorruption: {img_path}: the corruptions '
                'need images of at least 32 x 32 pixels, got '
                f'{img.shape[1]} x {img.shape[0]}')
        seed = corruption_seed(img_path, self.corruption, self.severity,
                               self.seed)
        kwargs = {'seed': seed} if self.corruption in _SEEDED else {}
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            if img.ndim == 3:
                rgb = np.ascontiguousarray(img[..., ::-1])
                return np.ascontiguousarray(corrupt(
                    rgb, self.severity, self.corruption, **kwargs)[..., ::-1])
            return corrupt(img, self.severity, self.corruption,
                           **kwargs)[..., 0]
        finally:
            np.random.set_state(state)

    def _cached(self, img: np.ndarray, img_path: str) -> np.ndarray:
        path = self.cache_path(img_path)
        if osp.isfile(path):
            out = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if out is not None and out.shape == img.shape:
                return out
        out = self.corrupt(img, img_path)
        os.makedirs(osp.dirname(path), exist_ok=True)
        ok, data = cv2.imencode('.png', out)
        if not ok:
            raise OSError(f'ImageCorruption: cannot encode {img_path}')
        # complete under its name or not there: workers may race
        tmp = f'{path}.{os.getpid()}.tmp'
        with open(tmp, 'wb') as f:
            f.write(data.tobytes())
        os.replace(tmp, path)
        return out

    def transform(self, results: dict) -> dict:
        img, path = results['img'], results.get('img_path', '')
        results['img'] = self._cached(img, path) if (
            self.cache_dir is not None and self.severity) else \
            self.corrupt(img, path)
        results['corruption'] = f'{self.corruption}@{self.severity}'
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(corruption={self.corruption!r}, '
                f'severity={self.severity}, seed={self.seed}, '
                f'cache_dir={self.cache_dir!r})')


def with_corruption(pipeline: Sequence, corruption: str, severity: int,
                    seed: int = 0, cache_dir: Optional[str] = None) -> List:
    """A copy of a test ``pipeline`` with ``ImageCorruption`` right after
    ``LoadImageFromFile`` (a TTA pipeline loads before ``TestTimeAug``, so
    every scale and flip sees the same corrupted image).

    Args:
        pipeline: The test (or TTA) pipeline, a list of transform dicts;
            not modified.
        corruption / severity / seed / cache_dir: As in
            :class:`ImageCorruption` (validated here, before any image).

    Returns:
        list: The new pipeline.

    Raises:
        InvalidValueError: the pipeline has no ``LoadImageFromFile``, or an
            argument is invalid.
    """
    ImageCorruption(corruption, severity, seed, cache_dir)  # validates
    step = dict(type='ImageCorruption', corruption=corruption,
                severity=severity, seed=seed, cache_dir=cache_dir)
    out = copy.deepcopy(list(pipeline))
    for i, t in enumerate(out):
        if isinstance(t, dict) and t.get('type') in (
                'LoadImageFromFile', 'mmseg.LoadImageFromFile',
                'mmcv.LoadImageFromFile'):
            return out[:i + 1] + [step] + out[i + 1:]
    raise InvalidValueError(
        'the test pipeline has no LoadImageFromFile to put '
        f'ImageCorruption after: {[t.get("type") for t in out]}')
