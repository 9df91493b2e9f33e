"""Fit the query selection of the ``maskomaly`` scorer on a reference set.

Maskomaly (:class:`~mmseg_ood.scorers.mask_classification.maskomaly.Maskomaly`)
builds its anomaly map from the queries of a mask-classification head that
respond to anomalies. Which queries those are is measured on a small *labelled*
reference set, which must be disjoint from the datasets the scorer is then
evaluated on: :func:`fit_query_selection` runs one evaluation pass over it,
each query's mask probability ``sigmoid(m_q)`` attached as a score map (resized
to the image like every score), and streams per-query statistics
(:class:`QueryStatistics`) in bounded memory: the mean per-image IoU of
``{sigmoid(m_q) > 0.9}`` with the OOD pixels (the authors' criterion) and the
pixel AP of ``sigmoid(m_q)`` as an OOD score. :func:`query_selection` adds what
the tools do around it: the result is written to the work dir with the
reference dataset and the checkpoint's SHA-256, and reused while both match.

Memory: one :class:`~mmseg_ood.evaluation.accumulators.PixelOODAccumulator`
per query at ``bits=18`` without sub-histograms, one 8 KiB page per binade
its probabilities reach (at most 127 binades in ``(0, 1]``: 1 MiB per
query; a few hundred KiB in practice), and three float64 numbers per query
for the IoU. The pass itself holds the ``Q`` score maps of one image at the
image's size (``4 Q H W`` bytes, 800 MiB for 100 queries at 1024 x 2048),
beside the head's own ``(Q, H, W)`` mask probabilities.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, Optional, Tuple

import numpy as np
from mmengine.dist import get_rank
from mmengine.logging import print_log
from torch import Tensor

from ..errors import InvalidValueError
from ..evaluation.accumulators.base import Accumulator, merge_across_ranks
from ..evaluation.accumulators.pixel import PixelOODAccumulator
from ..evaluation.functional.inputs import (VOID, flat_ood_labels,
                                            sample_ood_labels, to_numpy)
from ..evaluation.metrics.accumulating_metric import AccumulatingMetric
from ..labels import IGNORE_INDEX
from ..models.introspection import (describe_head, final_classifier,
                                    final_decode_head, head_kind)
from ..scorers import BaseScorer, ScoreInputs
from ..scorers.mask_classification.maskomaly import Maskomaly, QuerySelection
from ..utils import file_sha256
from .evaluation_session import EvaluationSession

__all__ = ['QueryStatistics', 'QueryStatisticsMetric', 'fit_query_selection',
           'query_selection', 'selection_file', 'model_num_queries']

#: Name prefix of the per-query score maps of the fitting pass.
_PREFIX = '_maskomaly_query_'


class QueryStatistics(Accumulator):
    """Per-query OOD statistics of mask probabilities, streamed and
    mergeable.

    For each query q, over the images of a labelled reference set: the pixel
    AP of ``sigmoid(m_q)`` as an OOD score (pooled over all images, one
    :class:`~mmseg_ood.evaluation.accumulators.PixelOODAccumulator` per
    query, so it equals sklearn's ``average_precision_score`` up to the
    accumulator's binning), and the mean per-image IoU of ``M_q =
    {sigmoid(m_q) > mask_threshold}`` with the OOD pixels ``O``,
    ``|M_q & O| / |M_q | O|``, void pixels left out of both, over the
    images with at least one OOD pixel.

    Args:
        num_queries: Q.
        mask_threshold: Threshold of the IoU's masks (0.9 in the authors'
            ``anomaly_overlap.py``), in ``[0, 1)``.
        bits: Resolution of the AP histograms (see
            :class:`~mmseg_ood.evaluation.accumulators.PixelOODAccumulator`).
        ignore_index: Void label.
    """

    def __init__(self, num_queries: int, mask_threshold: float = 0.9,
                 bits: int = 18, ignore_index: int = IGNORE_INDEX):
        if isinstance(num_queries, bool) or not isinstance(
                num_queries, int) or num_queries < 1:
            raise InvalidValueError(
                f'`num_queries` must be an int >= 1, got {num_queries!r}')
        if not 0.0 <= mask_threshold < 1.0:
            raise InvalidValueError(
                f'`mask_threshold` must be in [0, 1), got {mask_threshold!r}')
        self.num_queries = num_queries
        self.mask_threshold = float(mask_threshold)
        self.bits = bits
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Forget every image."""
        self.pixel = [PixelOODAccumulator(bits=self.bits, max_refined=0,
                                          name=f'query {q}')
                      for q in range(self.num_queries)]
        self.iou_sum = np.zeros(self.num_queries, np.float64)
        self.images = 0
        self.images_with_ood = 0
        self.ood_pixels = 0
        self.id_pixels = 0

    def update(self, masks, labels) -> 'QueryStatistics':
        """Add one image.

        Args:
            masks: ``(Q, H, W)`` mask probabilities (tensor or array).
            labels: ``(H, W)`` OOD labels: 0 ID, 1 OOD, ``ignore_index``
                void.

        Raises:
            ValueError: other shapes, other label values, or a non-finite
                probability on a non-void pixel.
        """
        m = to_numpy(masks)
        y = flat_ood_labels(labels, self.ignore_index, 'query statistics')
        if m.ndim < 1 or m.shape[0] != self.num_queries or \
                m[0].size != y.size:
            raise InvalidValueError(
                f'query statistics: masks {m.shape} do not match '
                f'{self.num_queries} queries over labels of '
                f'{tuple(np.shape(labels))}')
        flat = m.reshape(self.num_queries, -1).astype(np.float32, copy=False)
        valid = y != VOID
        if not np.isfinite(flat).all() and \
                not np.isfinite(flat[:, valid]).all():
            raise InvalidValueError('query statistics: NaN or Inf mask '
                                    'probabilities on non-void pixels')
        for q in range(self.num_queries):
            self.pixel[q].update_valid(flat[q], y)
        ood = y == 1
        n_ood = int(ood.sum())
        self.images += 1
        self.ood_pixels += n_ood
        self.id_pixels += int((y == 0).sum())
        if n_ood:
            inside = (flat > self.mask_threshold) & valid
            inter = (inside & ood).sum(axis=1).astype(np.float64)
            union = inside.sum(axis=1) + n_ood - inter
            self.iou_sum += inter / union
            self.images_with_ood += 1
        return self

    def state_dict(self) -> dict:
        """The per-query histograms and IoU sums, and the counts."""
        return dict(pixel=[p.state_dict() for p in self.pixel],
                    iou_sum=self.iou_sum.copy(), images=self.images,
                    images_with_ood=self.images_with_ood,
                    ood_pixels=self.ood_pixels, id_pixels=self.id_pixels)

    def load_state_dict(self, state: dict) -> 'QueryStatistics':
        """Add another accumulator's :meth:`state_dict` (same Q)."""
        if len(state['pixel']) != self.num_queries:
            raise InvalidValueError(
                f"query statistics of {len(state['pixel'])} queries cannot "
                f'be merged into {self.num_queries}')
        for p, s in zip(self.pixel, state['pixel']):
            p.load_state_dict(s)
        self.iou_sum += np.asarray(state['iou_sum'], np.float64)
        for key in ('images', 'images_with_ood', 'ood_pixels', 'id_pixels'):
            setattr(self, key, getattr(self, key) + int(state[key]))
        return self

    def compute(self) -> dict:
        """``iou`` and ``ap``: lists of Q floats (NaN where undefined: no
        image with OOD pixels; no OOD or no ID pixels), and the counts
        ``images``, ``images_with_ood``, ``ood_pixels``, ``id_pixels``."""
        if self.images_with_ood:
            iou = (self.iou_sum / self.images_with_ood).tolist()
        else:
            iou = [float('nan')] * self.num_queries
        if self.ood_pixels and self.id_pixels:
            ap = [float(p.compute()['ap']) for p in self.pixel]
        else:
            ap = [float('nan')] * self.num_queries
        return dict(iou=iou, ap=ap, images=self.images,
                    images_with_ood=self.images_with_ood,
                    ood_pixels=self.ood_pixels, id_pixels=self.id_pixels)


class QueryStatisticsMetric(AccumulatingMetric):
    """The mmengine metric of the fitting pass: each sample's per-query
    maps (``ood_scores['_maskomaly_query_<q>']``) and OOD labels into one
    :class:`QueryStatistics`, merged across ranks (padding repeats of
    distributed sampling left out).

    Args:
        num_queries: Q.
        mask_threshold: As in :class:`QueryStatistics`.
        label_key: Data-sample field of the OOD label map.
        collect_device / prefix: As in mmengine's ``BaseMetric``.

    Attributes:
        last_statistics: After ``evaluate``, :meth:`QueryStatistics.compute`
            of all samples (``None`` before).
    """
    default_prefix = 'query_selection'

    def __init__(self, num_queries: int, mask_threshold: float = 0.9,
                 label_key: str = 'gt_sem_seg', collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        QueryStatistics(num_queries, mask_threshold)  # validates
        self.num_queries = num_queries
        self.mask_threshold = mask_threshold
        self.label_key = label_key
        self.last_statistics: Optional[dict] = None
        super().__init__(collect_device=collect_device, prefix=prefix)

    def _empty(self, *_) -> QueryStatistics:
        return QueryStatistics(self.num_queries, self.mask_threshold)

    def process_sample(self, sample: dict) -> None:
        labels = sample_ood_labels(sample, self.label_key, 'query selection')
        scores = sample['ood_scores']
        masks = np.stack([to_numpy(scores[f'{_PREFIX}{q}'])
                          for q in range(self.num_queries)])
        self.accumulator('queries', self._empty).update(masks, labels)

    def compute_accumulated(self, local) -> dict:
        merged = merge_across_ranks(local, self._empty)
        stats = merged['queries'] if 'queries' in merged else self._empty()
        self.last_statistics = stats.compute()
        return dict(images=stats.images,
                    images_with_ood=stats.images_with_ood)


class _QueryMask(BaseScorer):
    """``sigmoid(m_q)`` of one query, as a score map (fitting pass only)."""
    name = '_maskomaly_query'
    requires_queries = True

    def __init__(self, query: int):
        self.query = query

    def score(self, inputs: ScoreInputs) -> Tensor:
        return inputs.mask_probs[:, self.query]


def model_num_queries(session: EvaluationSession) -> int:
    """Q of the session's model, whose final decode head must be a
    mask-classification head (``maskomaly`` refuses other heads).

    Args:
        session: The model.

    Raises:
        UnsupportedScorerError: the head is not a MaskFormer / Mask2Former
            head (the message names it).
    """
    from ..scorers import UnsupportedScorerError
    head = final_decode_head(session.model)
    reason = Maskomaly().unsupported_reason(
        final_classifier(head) is not None, head_kind(head),
        describe_head(head))
    if reason:
        raise UnsupportedScorerError(reason)
    return int(head.num_queries)


def fit_query_selection(session: EvaluationSession, dataset: dict,
                        name: str, preset_path: str = '',
                        mask_threshold: float = 0.9,
                        checkpoint_sha256: Optional[str] = None
                        ) -> QuerySelection:
    """Each query's statistics on a labelled reference set, in one pass.

    Args:
        session: The model (a MaskFormer / Mask2Former head).
        dataset: The reference set's dataset config (OOD labels 0 / 1 /
            255; the pass uses the model's test pipeline).
        name: The reference set's name (recorded, and in messages).
        preset_path: Its preset file (recorded).
        mask_threshold: Threshold of the per-query IoU.
        checkpoint_sha256: The checkpoint's SHA-256 if already known;
            default: computed.

    Returns:
        QuerySelection: the per-query IoU and AP, the reference set and
        the checkpoint's SHA-256; the same on every rank.

    Raises:
        ValueError: the reference set has no OOD pixels or no ID pixels.
    """
    num_queries = model_num_queries(session)
    metric = QueryStatisticsMetric(num_queries, mask_threshold)
    session.run_pass(dataset, name=f'maskomaly_fit_{name}',
                     scorers={f'{_PREFIX}{q}': _QueryMask(q)
                              for q in range(num_queries)},
                     ood_labels=True, metrics=[metric])
    stats = metric.last_statistics
    if not stats['ood_pixels'] or not stats['id_pixels']:
        raise InvalidValueError(
            f'the maskomaly reference set {name!r} has '
            f"{stats['ood_pixels']} OOD and {stats['id_pixels']} ID pixels "
            f"in {stats['images']} images: selecting queries needs both")
    return QuerySelection(
        num_queries=num_queries, iou=stats['iou'], ap=stats['ap'],
        mask_threshold=mask_threshold,
        reference=dict(dataset=name, preset=preset_path,
                       images=stats['images'],
                       images_with_ood=stats['images_with_ood'],
                       ood_pixels=stats['ood_pixels'],
                       id_pixels=stats['id_pixels']),
        binding=dict(checkpoint_sha256=checkpoint_sha256
                     or file_sha256(session.checkpoint),
                     checkpoint=osp.abspath(session.checkpoint),
                     config=osp.abspath(session.config)))


def selection_file(work_dir: str, dataset: str) -> str:
    """Where :func:`query_selection` keeps the selection fitted on
    ``dataset``: ``<work_dir>/maskomaly_queries_<dataset>.json``.

    Args:
        work_dir: The run's work dir.
        dataset: The reference set's name.
    """
    return osp.join(work_dir, f'maskomaly_queries_{dataset}.json')


def query_selection(session: EvaluationSession, dataset: dict, name: str,
                    preset_path: str = '', mask_threshold: float = 0.9,
                    cache_dir: Optional[str] = None
                    ) -> Tuple[QuerySelection, str, bool]:
    """The query selection on reference set ``name``, fitted or reused.

    A file :func:`selection_file` in ``cache_dir`` (default: the session's
    work dir) is reused when it was fitted on the same checkpoint (SHA-256),
    config, reference set, threshold and number of queries; otherwise the
    selection is fitted (:func:`fit_query_selection`) and written there
    (rank 0, atomically).

    Args:
        session: The model.
        dataset: The reference set's dataset config.
        name: Its name.
        preset_path: Its preset file (recorded).
        mask_threshold: Threshold of the per-query IoU.
        cache_dir: Folder of the file; default: the work dir.

    Returns:
        tuple: ``(selection, file, fitted)``; ``fitted`` is ``False`` when
        the file was reused.
    """
    cache_dir = cache_dir or session.work_dir
    path = selection_file(cache_dir, name)
    sha256 = file_sha256(session.checkpoint)
    if osp.isfile(path):
        cached = QuerySelection.load(path)
        wanted: Dict[str, object] = dict(
            checkpoint_sha256=sha256, config=osp.abspath(session.config))
        if all(cached.binding.get(k) == v for k, v in wanted.items()) and \
                cached.reference.get('dataset') == name and \
                cached.mask_threshold == mask_threshold and \
                cached.num_queries == model_num_queries(session):
            print_log(f'maskomaly: reusing the query selection in {path}',
                      logger='current')
            return cached, path, False
        print_log(f'maskomaly: {path} was fitted on another checkpoint, '
                  'config or threshold; fitting again', logger='current')
    selection = fit_query_selection(session, dataset, name, preset_path,
                                    mask_threshold, sha256)
    if get_rank() == 0:
        os.makedirs(cache_dir, exist_ok=True)
        selection.save(path)
        print_log(f'maskomaly: query selection on {name} saved to {path}',
                  logger='current')
    return selection, path, True
