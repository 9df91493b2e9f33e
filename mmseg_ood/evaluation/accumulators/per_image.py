"""Per-image pixel metrics, averaged over images, next to the pooled ones.

The SMIYC benchmark and Fishyscapes *pool* every pixel of a dataset into
one curve (:class:`~mmseg_ood.evaluation.PixelOODAccumulator`); pytorch-ood
and the StreamHazards evaluation compute AUROC / AP / FPR95 *per image* and
average them. The two answer different questions (how well one threshold
separates all pixels vs how well each image ranks its own pixels) and can
differ by tens of points, so both are reported, labelled.

Per-image metrics are defined only for an image with both ID and OOD
pixels (after removing void): the others are skipped and counted. Every
image, skipped or not, also keeps what its ground truth holds
(:data:`IMAGE_FACTS`: its ID, OOD and void pixels, the OOD share of the
labelled pixels and its 8-connected OOD components), so the images a
scorer fails on can be found and told apart from images with little to
find.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np

from .base import Accumulator
from .components import label_components

__all__ = ['PerImageOODMetrics', 'PER_IMAGE_KEYS', 'IMAGE_FACTS',
           'image_facts']

#: The metrics averaged over images.
PER_IMAGE_KEYS = ('auroc', 'ap', 'fpr95')
#: What each image's ground truth holds (:func:`image_facts`).
IMAGE_FACTS = ('id_pixels', 'ood_pixels', 'void_pixels', 'ood_share',
               'ood_components')


def image_facts(labels: np.ndarray, void: int) -> Dict[str, object]:
    """The ground-truth facts of one image (:data:`IMAGE_FACTS`).

    Args:
        labels: ``(H, W)`` OOD labels, 0 (ID), 1 (OOD) or ``void``.
        void: The void value.

    Returns:
        dict: ``id_pixels``, ``ood_pixels``, ``void_pixels`` (counts),
        ``ood_share`` (OOD / (ID + OOD), ``None`` where every pixel is
        void) and ``ood_components`` (8-connected components of the OOD
        pixels, before any size filter:
        :func:`~mmseg_ood.evaluation.accumulators.components.
        label_components`).
    """
    lab = np.asarray(labels)
    n_id, n_ood = int((lab == 0).sum()), int((lab == 1).sum())
    labelled = n_id + n_ood
    return dict(id_pixels=n_id, ood_pixels=n_ood,
                void_pixels=int((lab == void).sum()),
                ood_share=n_ood / labelled if labelled else None,
                ood_components=label_components(lab == 1)[1])


class PerImageOODMetrics(Accumulator):
    """Each image's AUROC / AP / FPR95 per scorer, and the images skipped.

    :meth:`update` takes one image's metrics (computed by the caller, e.g.
    :class:`~mmseg_ood.evaluation.OODMetric` from a per-image histogram);
    merging concatenates. :meth:`compute` averages over the images that
    have both classes, in image-path order (the same whatever the ranks).
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        #: (image, {scorer: (auroc, ap, fpr95)}) of the images with both
        #: classes
        self.records: List[Tuple[str, Dict[str, Tuple[float, ...]]]] = []
        #: (image, why) of the skipped images
        self.skipped: List[Tuple[str, str]] = []
        #: image -> its ground-truth facts (:func:`image_facts`), where
        #: given
        self.facts: Dict[str, dict] = {}

    def update(self, image: str,
               metrics: Optional[Dict[str, dict]] = None,
               skipped: Optional[str] = None,
               facts: Optional[dict] = None) -> 'PerImageOODMetrics':
        """Add an image: its metrics by scorer, or why it is skipped, and
        optionally its ground-truth ``facts`` (:func:`image_facts`)."""
        if facts is not None:
            self.facts[str(image)] = {k: facts[k] for k in IMAGE_FACTS}
        if skipped is not None:
            self.skipped.append((str(image), skipped))
        else:
            self.records.append((str(image), {
                n: tuple(float(m[k]) for k in PER_IMAGE_KEYS)
                for n, m in metrics.items()}))
        return self

    def state_dict(self) -> dict:
        return dict(records=[(i, {n: list(v) for n, v in m.items()})
                             for i, m in self.records],
                    skipped=list(self.skipped), facts=dict(self.facts))

    def load_state_dict(self, state: dict) -> 'PerImageOODMetrics':
        self.records += [(i, {n: tuple(v) for n, v in m.items()})
                         for i, m in state['records']]
        self.skipped += [tuple(s) for s in state['skipped']]
        self.facts.update(state.get('facts') or {})
        return self

    def compute(self) -> 'OrderedDict[str, Dict[str, float]]':
        """Scorer -> ``per_image_<metric>`` (means), ``per_image_images``
        (images averaged) and ``per_image_skipped``."""
        records = sorted(self.records, key=lambda r: r[0])
        names = list(OrderedDict.fromkeys(n for _, m in records for n in m))
        out = OrderedDict()
        for n in names:
            values = np.array([m[n] for _, m in records if n in m],
                              np.float64).reshape(-1, len(PER_IMAGE_KEYS))
            out[n] = {f'per_image_{k}': float(values[:, j].mean())
                      for j, k in enumerate(PER_IMAGE_KEYS)}
            out[n]['per_image_images'] = int(values.shape[0])
            out[n]['per_image_skipped'] = len(self.skipped)
        return out

    def table(self) -> List[dict]:
        """One row per (image, scorer): the per-image values (for a CSV),
        skipped images with empty values and the reason; each row carries
        its image's facts (:data:`IMAGE_FACTS`, empty where not given)."""
        rows = []
        none = {k: None for k in IMAGE_FACTS}
        for image, m in sorted(self.records, key=lambda r: r[0]):
            facts = self.facts.get(image, none)
            for n, v in m.items():
                rows.append(dict(image=image, scorer=n,
                                 **dict(zip(PER_IMAGE_KEYS, v)), **facts,
                                 skipped=''))
        for image, why in sorted(self.skipped):
            rows.append(dict(image=image, scorer='',
                             **{k: None for k in PER_IMAGE_KEYS},
                             **self.facts.get(image, none), skipped=why))
        return rows
