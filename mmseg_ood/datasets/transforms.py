"""Loading of OOD label maps."""
from __future__ import annotations

import copy
from typing import Sequence

from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadOODAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` followed by the dataset's raw-value map.

    The OOD datasets put a 256-entry lookup table in each sample
    (``ood_lut``); it maps the raw label values into 0 (ID), 1 (OOD) and
    255 (void). Use it in place of ``LoadAnnotations`` in test pipelines.

    Args:
        **kwargs: As mmseg's ``LoadAnnotations``.
    """

    def _load_seg_map(self, results: dict) -> None:
        super()._load_seg_map(results)
        lut = results.get('ood_lut')
        if lut is None:
            raise KeyError(
                f"LoadOODAnnotations: sample {results.get('img_path')} has "
                'no `ood_lut`; use it with an OOD dataset (OODSegDataset)')
        results['gt_seg_map'] = lut[results['gt_seg_map']]


def _is(transform, name: str) -> bool:
    return isinstance(transform, dict) and transform.get('type') in (
        name, f'mmseg.{name}')


def _contains(transforms, name: str) -> bool:
    """Whether ``name`` is among ``transforms``, nested ones included."""
    if isinstance(transforms, dict):
        return _is(transforms, name) or _contains(
            transforms.get('transforms', []), name)
    if isinstance(transforms, (list, tuple)):
        return any(_contains(t, name) for t in transforms)
    return False


def with_ood_annotations(pipeline: Sequence) -> list:
    """A test (or TTA) pipeline that loads OOD labels.

    Every ``LoadAnnotations`` becomes ``LoadOODAnnotations`` (same
    arguments). A pipeline that loads no annotations gets
    ``LoadOODAnnotations`` right before its ``PackSegInputs`` (inside
    ``TestTimeAug``: as a step of its own before the step that packs), so
    the labels are loaded after any resizing and stay at the image's
    original size, as mmseg's own test pipelines place ``LoadAnnotations``.

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
    raise ValueError('the test pipeline has no PackSegInputs, so there is no '
                     'place for LoadOODAnnotations: '
                     f'{[t.get("type") for t in out if isinstance(t, dict)]}')
