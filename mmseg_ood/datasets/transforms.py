"""Loading of OOD label maps, and of images that fail with the file's name.

:func:`with_ood_annotations` turns a test (or TTA) pipeline into one that
loads OOD labels: ``LoadAnnotations`` -> :class:`LoadOODAnnotations`,
``LoadImageFromFile`` -> :class:`LoadImageFromFileChecked`, and every
``PackSegInputs`` also packs ``ood_unlisted`` (the raw label values the
dataset's ``value_map`` does not list, with their pixel counts) into the
data sample's metainfo, where the OOD metric reads it.
"""
from __future__ import annotations

import copy
import inspect
import re
from typing import Optional, Sequence

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations, PackSegInputs
from mmseg.registry import TRANSFORMS

from ..errors import InvalidValueError, MissingFieldError
from ..labels import IGNORE_INDEX

#: The metainfo key of a sample's unlisted raw label values.
UNLISTED_KEY = 'ood_unlisted'


def _reason(e: Exception) -> str:
    """``': <decoder message>'`` without PIL's in-memory buffer repr (the
    file is named already); empty for mmcv's bare assert."""
    if isinstance(e, AssertionError):
        return ''
    return ': ' + re.sub(r' ?<_io\.\w+ object at 0x[0-9a-f]+>', '', str(e))


@TRANSFORMS.register_module()
class LoadOODAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` followed by the dataset's raw-value map.

    The OOD datasets put in each sample a 256-entry lookup table
    (``ood_lut``), which maps the raw label values into 0 (ID), 1 (OOD) and
    255 (void), and the mask of the raw values their ``value_map`` lists
    (``ood_listed``). A raw value that is not listed is void, and its
    pixels are counted in ``results['ood_unlisted']`` (``{raw value: pixel
    count}``, empty when every value is listed; one ``np.bincount`` per
    label map) so that the evaluation reports them. Use it in place of
    ``LoadAnnotations`` in test pipelines (:func:`with_ood_annotations`).

    A label file that cannot be decoded, is not a single-channel ``(H, W)``
    map or holds values above 255 raises ``ValueError`` naming the file and
    its image.

    Args:
        reduce_zero_label: As mmseg's ``LoadAnnotations``: 0 becomes void
            and the other raw values shift down by one before the value
            map; ``None`` takes the dataset's setting, another value must
            equal it.
        backend_args: Arguments of the file backend (mmengine ``fileio``).
        imdecode_backend: Decoding backend of :func:`mmcv.imfrombytes`
            (``'pillow'`` by default).
    """

    def _load_seg_map(self, results: dict) -> None:
        lut = results.get('ood_lut')
        listed = results.get('ood_listed')
        if lut is None or listed is None:
            missing = 'ood_lut' if lut is None else 'ood_listed'
            raise MissingFieldError(
                f"LoadOODAnnotations: sample {results.get('img_path')} has "
                f'no `{missing}`; use it with an OOD dataset (OODSegDataset)')
        raw = self._decode_label(results['seg_map_path'],
                                 results.get('img_path'))
        raw = self._reduce_and_relabel(raw, results)
        counts = np.bincount(raw.ravel(), minlength=256)
        results[UNLISTED_KEY] = {
            int(v): int(counts[v])
            for v in np.flatnonzero((counts > 0) & ~listed)
        }
        results['gt_seg_map'] = lut[raw]
        results['seg_fields'].append('gt_seg_map')

    def _decode_label(self, path: str, img_path: Optional[str]) -> np.ndarray:
        """The raw ``(H, W)`` uint8 label map of ``path``."""
        what = (f'the OOD label map {path!r} (of image {img_path!r})')
        img_bytes = fileio.get(path, backend_args=self.backend_args)
        try:
            raw = mmcv.imfrombytes(img_bytes, flag='unchanged',
                                   backend=self.imdecode_backend)
        except Exception as e:  # PIL / cv2 decoding errors, truncated files
            raise InvalidValueError(f'cannot decode {what}{_reason(e)}') from e
        if raw is None:  # cv2 returns None for undecodable bytes
            raise InvalidValueError(f'cannot decode {what}')
        if raw.ndim == 3 and raw.shape[2] == 1:
            # only the channel axis: squeeze() would also drop the height
            # of a 1xW map (or the width of an Hx1 one)
            raw = raw[..., 0]
        if raw.ndim != 2:
            raise InvalidValueError(
                f'{what} has shape {raw.shape}; expected a '
                'single-channel (H, W) map of raw label values')
        if raw.dtype != np.uint8:
            # a 16-bit map would wrap around modulo 256 in astype(uint8)
            if raw.size and (raw.min() < 0 or raw.max() > 255):
                raise InvalidValueError(
                    f'{what} holds values in [{raw.min()}, {raw.max()}] '
                    f'({raw.dtype}); raw label values must be in [0, 255]')
            raw = raw.astype(np.uint8)
        return raw

    def _reduce_and_relabel(self, raw: np.ndarray, results: dict
                            ) -> np.ndarray:
        """mmseg's ``reduce_zero_label`` and ``label_map``, as in
        ``LoadAnnotations._load_seg_map``."""
        if self.reduce_zero_label is None:
            self.reduce_zero_label = results['reduce_zero_label']
        if self.reduce_zero_label != results['reduce_zero_label']:
            raise InvalidValueError(
                'LoadOODAnnotations: `reduce_zero_label` is '
                f'{self.reduce_zero_label} but the dataset was built with '
                f"{results['reduce_zero_label']}")
        if self.reduce_zero_label:
            raw = raw.copy()
            # as mmseg's LoadAnnotations: 0 -> void, the rest shift down
            raw[raw == 0] = IGNORE_INDEX
            raw = raw - 1
            raw[raw == IGNORE_INDEX - 1] = IGNORE_INDEX
        if results.get('label_map', None) is not None:
            src = raw.copy()
            for old_id, new_id in results['label_map'].items():
                raw[src == old_id] = new_id
        return raw


@TRANSFORMS.register_module()
class LoadImageFromFileChecked(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile``; an image that cannot be decoded raises
    ``ValueError`` naming the file (mmcv raises a bare ``AssertionError``
    with the cv2 backend and the decoder's own error with pillow).

    A missing file still raises ``FileNotFoundError``; with
    ``ignore_empty=True``, an error while reading or decoding returns
    ``None`` as in mmcv.

    Args:
        to_float32: Return a float32 image instead of uint8.
        color_type: The ``flag`` of :func:`mmcv.imfrombytes`
            (``'color'``).
        imdecode_backend: Decoding backend of :func:`mmcv.imfrombytes`
            (``'cv2'``).
        file_client_args: Deprecated in mmcv; use ``backend_args``.
        ignore_empty: Return ``None`` for a missing or undecodable file
            instead of raising.
        backend_args: Arguments of the file backend (mmengine ``fileio``).
    """

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        try:
            return super().transform(results)
        except FileNotFoundError:
            raise
        except Exception as e:  # cv2: assert img is not None; PIL errors
            raise InvalidValueError(
                f'cannot decode the image {path!r}{_reason(e)}') from e


def _is(transform, name: str) -> bool:
    # mmcv's own LoadAnnotations takes other arguments: never swapped
    scopes = ('mmseg', 'mmcv') if name == 'LoadImageFromFile' else ('mmseg', )
    return isinstance(transform, dict) and transform.get('type') in (
        name, *(f'{s}.{name}' for s in scopes))


def _contains(transforms, name: str) -> bool:
    """Whether ``name`` is among ``transforms``, nested ones included."""
    if isinstance(transforms, dict):
        return _is(transforms, name) or _contains(
            transforms.get('transforms', []), name)
    if isinstance(transforms, (list, tuple)):
        return any(_contains(t, name) for t in transforms)
    return False


def _default_meta_keys() -> tuple:
    return tuple(inspect.signature(PackSegInputs.__init__).parameters[
        'meta_keys'].default)


def with_ood_annotations(pipeline: Sequence) -> list:
    """A test (or TTA) pipeline that loads OOD labels.

    Every ``LoadAnnotations`` becomes ``LoadOODAnnotations`` and every
    ``LoadImageFromFile`` becomes ``LoadImageFromFileChecked`` (same
    arguments), top level and inside ``TestTimeAug``. Every
    ``PackSegInputs`` gets ``'ood_unlisted'`` appended to its
    ``meta_keys`` (mmseg's defaults when it sets none), so each data sample
    carries ``ood_unlisted``. A pipeline that loads no annotations gets
    ``LoadOODAnnotations`` right before its ``PackSegInputs`` (inside
    ``TestTimeAug``: as a step of its own before the step that packs), so
    the labels are loaded after any resizing and stay at the image's
    original size, as mmseg's own test pipelines place ``LoadAnnotations``.

    Apply :func:`~mmseg_ood.datasets.with_corruption` before this function:
    it looks for ``LoadImageFromFile`` by name.

    Args:
        pipeline: Transform configs (not modified).

    Returns:
        list: The new pipeline.

    Raises:
        ValueError: no ``PackSegInputs`` to put the labels before.
    """
    def swap(t):
        if isinstance(t, dict):
            t = dict(t)
            if _is(t, 'LoadAnnotations'):
                t['type'] = 'LoadOODAnnotations'
            elif _is(t, 'LoadImageFromFile'):
                t['type'] = 'LoadImageFromFileChecked'
            elif _is(t, 'PackSegInputs'):
                keys = tuple(t.get('meta_keys', _default_meta_keys()))
                if UNLISTED_KEY not in keys:
                    keys += (UNLISTED_KEY, )
                t['meta_keys'] = keys
            if 'transforms' in t:
                t['transforms'] = swap(t['transforms'])
            return t
        if isinstance(t, (list, tuple)):
            return [swap(x) for x in t]
        return t

    out = swap(copy.deepcopy(list(pipeline)))
    if _contains(out, 'LoadOODAnnotations'):
        return out
    for i, t in enumerate(out):
        if _is(t, 'PackSegInputs'):
            return out[:i] + [dict(type='LoadOODAnnotations')] + out[i:]
        if _is(t, 'TestTimeAug'):
            steps = list(t['transforms'])
            for j, step in enumerate(steps):
                if _contains(step, 'PackSegInputs'):
                    t['transforms'] = steps[:j] + [[
                        dict(type='LoadOODAnnotations')
                    ]] + steps[j:]
                    return out
    raise InvalidValueError(
        'the test pipeline has no PackSegInputs, so there is no '
        'place for LoadOODAnnotations: '
        f'{[t.get("type") for t in out if isinstance(t, dict)]}')


def without_annotations(pipeline: Sequence) -> list:
    """A test (or TTA) pipeline for images without label files: every
    ``LoadAnnotations`` / ``LoadOODAnnotations`` is left out (top level and
    inside ``TestTimeAug``; a TTA step left empty is dropped) and every
    ``LoadImageFromFile`` becomes ``LoadImageFromFileChecked``.

    Args:
        pipeline: Transform configs (not modified).

    Returns:
        list: The new pipeline.
    """
    def labels(t) -> bool:
        return _is(t, 'LoadAnnotations') or _is(t, 'LoadOODAnnotations')

    def strip(t):
        if isinstance(t, dict):
            t = dict(t)
            if _is(t, 'LoadImageFromFile'):
                t['type'] = 'LoadImageFromFileChecked'
            if 'transforms' in t:
                t['transforms'] = strip(t['transforms'])
            return t
        if isinstance(t, (list, tuple)):
            kept = [strip(x) for x in t if not labels(x)]
            return [x for x in kept if x != []]
        return t

    return strip(copy.deepcopy(list(pipeline)))
