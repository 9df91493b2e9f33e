"""The background IoU pass of ``tools/ood_test.py`` on whole-image OOD sets.

A dataset preset with ``whole_image = True`` (textures, noise: no known
class anywhere, IBE Table 2) has no OOD label maps to score against; what
IBE measures there is how much of each image the model calls background
(:class:`~mmseg_ood.evaluation.BackgroundIoUMetric`). A model without a
background class has no such number: the result says "not applicable" and
why, never a number for another class.
"""
from __future__ import annotations

import warnings
from typing import Dict, Optional

from ..datasets.presets import DatasetPreset
from ..errors import OODNotice
from ..evaluation import BackgroundIoUMetric
from ..models import final_decode_head, head_kind
from ..reports.results import percent
from .evaluation_session import EvaluationSession

__all__ = ['background_iou_pass', 'background_iou_markdown']


def background_index(session: EvaluationSession) -> Optional[int]:
    """The background class of a model for non-distinctiveness (IBE eq. 4):
    the implicit background of IBE / SCrIBE heads, or a class named
    ``background``; ``None`` otherwise."""
    head = final_decode_head(session.model)
    if head_kind(head) in ('ibe', 'scribe'):
        return int(head.background_index)
    classes = (session.checkpoint_meta.get('dataset_meta') or {}).get(
        'classes') or ()
    names = [str(c).lower() for c in classes]
    return names.index('background') if 'background' in names else None


def background_iou_pass(session: EvaluationSession,
                        preset: DatasetPreset) -> dict:
    """The model's background IoU on a whole-image OOD preset.

    The background class is the implicit background of an IBE / SCrIBE
    head, else the class named ``background`` in the checkpoint's
    ``dataset_meta`` (:func:`background_index`).

    Args:
        session: The loaded model (config, checkpoint, runner) that runs
            the pass.
        preset: A whole-image OOD dataset preset (``whole_image = True``):
            every pixel of every image is OOD.

    Returns:
        dict: ``applicable=True``, ``background_index`` and the metric's
        results (``pooled``, ``image_mean``: percent; ``images``,
        ``pixels``, ``images_without_valid``); or ``applicable=False`` and
        the ``reason`` (also warned), without running a pass.
    """
    bg = background_index(session)
    if bg is None:
        classes = session.dataset_meta('classes')
        reason = ('the model has no background class (no IBE / SCrIBE head '
                  "and no class named 'background'" +
                  (f' among {list(classes)}' if classes else '') + ')')
        warnings.warn(f'{preset.name}: background IoU not applicable: '
                      f'{reason}', OODNotice)
        return dict(applicable=False, reason=reason)
    metric = BackgroundIoUMetric(background_index=bg)
    result = session.run_pass(preset.dataset, name=preset.name,
                              metrics=[metric])
    pre = f'{metric.prefix}/'
    return dict(applicable=True, background_index=bg,
                **{k[len(pre):]: v for k, v in result.metrics.items()
                   if k.startswith(pre)})


def background_iou_markdown(results: Dict[str, dict]) -> str:
    """The ``background_iou`` section of ``results.md`` ('' without
    whole-image datasets).

    Args:
        results: :func:`background_iou_pass`'s result per dataset name, in
            the order the rows are listed.

    Returns:
        str: A Markdown heading and table (pooled and image-mean background
        IoU in percent, or "not applicable" and the reason), or ``''``.
    """
    if not results:
        return ''
    lines = ['## Background IoU on whole-image OOD sets (IBE Table 2)', '',
             'Every pixel is background: the share of pixels the model '
             'predicts background, pooled over the set and averaged over '
             'images (percent; higher = more of the OOD images rejected).',
             '', '| dataset | pooled | image mean | images |',
             '|---|---|---|---|']
    for name, r in results.items():
        if r.get('applicable'):
            lines.append(f"| {name} | {percent(r['pooled'] / 100)} | "
                         f"{percent(r['image_mean'] / 100)} | "
                         f"{r['images']} |")
        else:
            lines.append(f"| {name} | not applicable: {r['reason']} | | |")
    return '\n'.join(lines)
