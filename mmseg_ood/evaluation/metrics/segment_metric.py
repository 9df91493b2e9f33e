"""Segment-wise OOD evaluation: detection errors per threshold, with and
without a meta classifier (entropy-maximization paper, sec. 7, eq. 8-10,
Table 2)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmseg.registry import METRICS
from sklearn.metrics import average_precision_score, roc_auc_score

from ...errors import InvalidTypeError, InvalidValueError, MissingFieldError
from ...labels import IGNORE_INDEX
from ...meta.classifier import MetaClassifier, load_meta_classifiers
from ...meta.segments import (FALSE_POSITIVE, IGNORED, TRUE_POSITIVE,
                              feature_names, image_segments)
from ...utils.arguments import strict_arguments
from ..accumulators.base import Accumulator, merge_across_ranks
from ..functional.inputs import check_finite, flat_ood_labels, to_numpy
from ..functional.roc_pr import UndefinedMetricWarning
from .accumulating_metric import AccumulatingMetric

__all__ = ['check_thresholds', 'SegmentTable', 'SegmentData',
           'detection_errors',
           'error_detection_scores', 'msp_error_score', 'segment_results',
           'threshold_key', 'threshold_name', 'OODSegmentMetric',
           'DEFAULT_SEGMENT_THRESHOLDS']

#: The paper's acceptable range (sec. 6.3, Table 2 below the line).
DEFAULT_SEGMENT_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def check_thresholds(thresholds) -> List[float]:
    """``thresholds`` as floats; a non-empty list of distinct finite
    numbers, else ValueError.

    Args:
        thresholds: The segment thresholds ``t`` of eq. 7 (OOD where the
            score reaches ``t``), e.g. :data:`DEFAULT_SEGMENT_THRESHOLDS`.

    Returns:
        list: The thresholds as Python floats, in the order given.

    Raises:
        ValueError: empty, a str, a non-finite or non-numeric entry (bools
            included), or a repeated value.
    """
    if isinstance(thresholds, (str, bytes)) or not thresholds or not all(
            isinstance(t, (int, float, np.integer, np.floating))
            and not isinstance(t, bool) and np.isfinite(t)
            for t in thresholds):
        raise InvalidValueError(
            '`thresholds` must be a non-empty list of finite '
            f'numbers, got {thresholds!r}')
    out = [float(t) for t in thresholds]
    if len(set(out)) != len(out):
        raise InvalidValueError(f'`thresholds` repeats a value: {out}')
    return out


@dataclass
class SegmentData:
    """Every segment of a dataset at one threshold, images in key order.

    Attributes:
        features: ``(n, F)`` float64 (columns: :attr:`feature_names`).
        kind: ``(n,)`` 1 TP, 0 FP, -1 ignored (all void).
        image: ``(n,)`` index of the segment's image in :attr:`images`.
        id_pixels: ``(n,)`` ID pixels in each segment.
        touches: ``(m, 2)`` ``(segment, object)`` pairs, global indices.
        num_objects: Ground-truth OOD objects in the dataset.
        num_id: ID pixels in the dataset.
        images: Image keys (paths), sorted.
        num_classes: The model's classes (0 if no image was seen).
    """
    features: np.ndarray
    kind: np.ndarray
    image: np.ndarray
    id_pixels: np.ndarray
    touches: np.ndarray
    num_objects: int
    num_id: int
    images: List[str]
    num_classes: int

    @property
    def feature_names(self) -> List[str]:
        """Names of the feature columns."""
        return feature_names(self.num_classes) if self.num_classes else []

    @property
    def evaluated(self) -> np.ndarray:
        """Segments that count (not entirely on void)."""
        return self.kind != IGNORED


class SegmentTable(Accumulator):
    """The segments of the images seen so far, at one threshold.

    Unlike the package's other accumulators its size grows with the data
    (one row of ``F`` features per segment: the meta classifier is fitted on
    all of them); merging appends, and :meth:`compute` orders the images by
    key, so any split over ranks gives the same table.

    Args:
        threshold: The segment threshold ``t`` (eq. 7) the segments were
            cut at; kept for the results' names.
    """

    def __init__(self, threshold: float):
        self.threshold = float(threshold)
        self.reset()

    def reset(self) -> None:
        """Forget every image."""
        self.blocks: List[dict] = []

    def update(self, key: str, segments) -> 'SegmentTable':
        """Add one image's :class:`~mmseg_ood.meta.segments.
        ImageSegments` (with ground truth) under ``key``."""
        t = segments.truth
        self.blocks.append(dict(
            key=str(key), features=segments.features, kind=t.kind,
            id_pixels=t.id_pixels, touches=t.touches,
            num_objects=t.num_objects, num_id=t.num_id,
            num_classes=segments.num_classes))
        return self

    def state_dict(self) -> dict:
        """``dict(blocks=[...])``, one block of arrays per image."""
        return dict(blocks=list(self.blocks))

    def load_state_dict(self, state: dict) -> 'SegmentTable':
        """Append another table's images (e.g. another rank's)."""
        self.blocks.extend(state['blocks'])
        return self

    def compute(self) -> SegmentData:
        """All segments, images sorted by key, indices made global.

        Raises:
            ValueError: images scored by models with different numbers of
                classes.
        """
        blocks = sorted(self.blocks, key=lambda b: b['key'])
        classes = {b['num_classes'] for b in blocks}
        if len(classes) > 1:
            raise InvalidValueError(
                f'segments of models with {sorted(classes)} '
                'classes cannot be pooled')
        num_classes = classes.pop() if classes else 0
        width = len(feature_names(num_classes)) if num_classes else 0
        seg_offset = obj_offset = 0
        touches = []
        for b in blocks:
            touches.append(b['touches'] + [seg_offset, obj_offset])
            seg_offset += len(b['kind'])
            obj_offset += b['num_objects']

        def cat(key, empty):
            return np.concatenate([b[key] for b in blocks]) if blocks \
                else empty

        return SegmentData(
            features=cat('features', np.zeros((0, width))),
            kind=cat('kind', np.zeros(0, np.int8)),
            image=np.repeat(np.arange(len(blocks)),
                            [len(b['kind']) for b in blocks]).astype(
                                np.int64),
            id_pixels=cat('id_pixels', np.zeros(0, np.int64)),
            touches=np.concatenate(touches) if touches else np.zeros(
                (0, 2), np.int64),
            num_objects=obj_offset,
            num_id=int(sum(b['num_id'] for b in blocks)),
            images=[b['key'] for b in blocks],
            num_classes=num_classes)


def detection_errors(data: SegmentData,
                     keep: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Table 2's errors of the OOD prediction made of the kept segments.

    Args:
        data: The segments at one threshold.
        keep: ``(n,)`` bool, the segments a meta classifier keeps
            (default: all).

    Returns:
        dict: ``fp`` (kept false-positive segments), ``fn`` (ground-truth
        objects no kept segment touches, eq. 8), ``errors`` (their sum),
        ``tp`` (kept true-positive segments), ``segments`` (kept,
        non-ignored), ``objects``, and ``id_miss_rate`` (eq. 10: ID pixels
        predicted OOD over all ID pixels; the road miss rate where the ID
        pixels are the road).
    """
    kept = np.ones(len(data.kind), bool) if keep is None else \
        np.asarray(keep, bool)
    counted = kept & data.evaluated
    fp = int((counted & (data.kind == FALSE_POSITIVE)).sum())
    tp = int((counted & (data.kind == TRUE_POSITIVE)).sum())
    hit = data.touches[kept[data.touches[:, 0]], 1] if len(
        data.touches) else np.zeros(0, np.int64)
    found = len(np.unique(hit))
    fn = data.num_objects - found
    if data.num_id:
        miss = float(data.id_pixels[kept].sum()) / data.num_id
    else:
        miss = float('nan')
        warnings.warn('the ID-pixel miss rate is undefined: no ID pixel',
                      UndefinedMetricWarning)
    return dict(fp=fp, fn=fn, errors=fp + fn, tp=tp,
                segments=int(counted.sum()), objects=data.num_objects,
                id_miss_rate=miss)


def error_detection_scores(is_fp: np.ndarray,
                           score: np.ndarray) -> Dict[str, float]:
    """Table 3: AUROC and AUPRC of ``score`` at telling false-positive
    segments (the positive class, the prediction errors) from true
    positives (sklearn's ``roc_auc_score`` / ``average_precision_score``);
    NaN when one kind is absent.

    Args:
        is_fp: ``(n,)`` bool, True for a false-positive segment; ignored
            segments must be left out by the caller.
        score: ``(n,)`` float, higher = more likely a false positive (e.g.
            the meta classifier's probability, or :func:`msp_error_score`).

    Returns:
        dict: ``auroc`` and ``auprc`` as floats in ``[0, 1]``; both NaN,
        with an ``UndefinedMetricWarning``, when only one kind is present.
    """
    is_fp = np.asarray(is_fp, bool)
    if is_fp.all() or not is_fp.any():
        warnings.warn(
            'AUROC / AUPRC of finding false-positive segments are undefined: '
            f'{is_fp.sum()} false and {(~is_fp).sum()} true positives',
            UndefinedMetricWarning)
        return dict(auroc=float('nan'), auprc=float('nan'))
    return dict(auroc=float(roc_auc_score(is_fp, score)),
                auprc=float(average_precision_score(is_fp, score)))


def msp_error_score(data: SegmentData) -> np.ndarray:
    """Table 3's baseline: the segment's mean maximum softmax probability
    (``1 - V_mean``; a confident segment is likely a false positive).

    Args:
        data: The segments at one threshold.

    Returns:
        np.ndarray: ``(n,)`` float64, in ``[1 / q, 1]``.
    """
    if not len(data.kind):
        return np.zeros(0)
    return 1.0 - data.features[:, data.feature_names.index('V_mean')]


def threshold_key(threshold: float) -> str:
    """The threshold as a key: the shortest string that reads back as the
    same float (``'0.5'``), so that no two thresholds share one.

    Args:
        threshold: A segment threshold.

    Returns:
        str: ``repr(float(threshold))``.
    """
    return repr(float(threshold))


def threshold_name(scorer: str, threshold: float, meta: bool = False) -> str:
    """``'entropy@0.5'`` / ``'entropy+meta@0.5'``.

    Args:
        scorer: The scorer's name as reported.
        threshold: The segment threshold (:func:`threshold_key`).
        meta: Whether the segments were filtered by a meta classifier
            (adds ``'+meta'``).

    Returns:
        str: The results' row name.
    """
    return f'{scorer}{"+meta" if meta else ""}@{threshold_key(threshold)}'


def segment_results(data: SegmentData,
                    tp_probability: Optional[np.ndarray] = None) -> dict:
    """Table 2 and Table 3 at one threshold.

    Args:
        data: The segments at the threshold.
        tp_probability: A meta classifier's TP probability of each
            evaluated segment (``data.evaluated``), or ``None``.

    Returns:
        dict: ``images``; ``baseline``: :func:`detection_errors` of all
        segments; ``msp_auroc`` / ``msp_auprc``: how well the segment's MSP
        finds the false positives; with ``tp_probability``, ``meta``: the
        errors of the segments it keeps (probability >= 0.5), and
        ``meta_auroc`` / ``meta_auprc``; without, ``meta`` is ``None``.
    """
    ev = data.evaluated
    is_fp = data.kind[ev] == FALSE_POSITIVE
    row = dict(images=len(data.images), baseline=detection_errors(data),
               meta=None, meta_auroc=None, meta_auprc=None)
    for k, v in error_detection_scores(is_fp,
                                       msp_error_score(data)[ev]).items():
        row[f'msp_{k}'] = v
    if tp_probability is not None:
        keep = np.ones(len(data.kind), bool)
        keep[ev] = tp_probability >= 0.5
        row['meta'] = detection_errors(data, keep)
        for k, v in error_detection_scores(is_fp,
                                           1 - tp_probability).items():
            row[f'meta_{k}'] = v
    return row


@METRICS.register_module()
@strict_arguments
class OODSegmentMetric(AccumulatingMetric):
    """Segment-wise OOD detection errors (entropy-maximization paper,
    sec. 7).

    For each threshold ``t``, the connected components of
    ``ood_scores[scorer] >= t`` are the OOD segments; each is matched with
    the ground truth and described by its features
    (:mod:`~mmseg_ood.meta.segments`, computed from the softmax of
    ``seg_logits``). Reports, per threshold (keys ``'<scorer>@<t>/<name>'``),
    the :func:`detection_errors`. With ``meta_classifier``, also the errors
    after removing the segments it rejects (``'<scorer>+meta@<t>/...'``)
    and its Table 3 AUROC / AUPRC next to the MSP baseline's.

    Args:
        scorer: The OOD scorer whose map is segmented (needs an
            ``OODScoringHook`` scoring it).
        thresholds: Segment thresholds (the meta classifier's are always
            added); default: the classifier's alone, or
            :data:`DEFAULT_SEGMENT_THRESHOLDS` without one.
        meta_classifier: A meta-classifier file
            (``tools/meta_classify.py --save``) or loaded classifiers.
        ignore_index: Void label of the OOD label map.
        collect_device / prefix: As in mmengine's ``BaseMetric``.

    References:
        Chan, Rottmann & Gottschalk, "Entropy Maximization and Meta
        Classification for Out-of-Distribution Detection in Semantic
        Segmentation", ICCV 2021, sec. 4 and 7 (eq. 8-10, Tables 2-3).

    Attributes:
        last_data: After ``evaluate``, threshold -> :class:`SegmentData`.
        last_results: After ``evaluate``, :func:`threshold_key` ->
            :func:`segment_results` (the layout of ``meta_results.json``).
    """
    default_prefix = 'segments'

    def __init__(self, scorer: str = 'entropy',
                 thresholds: Optional[Sequence[float]] = None,
                 meta_classifier: Union[str, Sequence[MetaClassifier],
                                        None] = None,
                 ignore_index: int = IGNORE_INDEX,
                 collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not isinstance(scorer, str):
            raise InvalidTypeError(
                f'`scorer` must be a scorer name, got {scorer!r}')
        if isinstance(meta_classifier, str):
            meta_classifier = load_meta_classifiers(meta_classifier, scorer)
        self.classifiers: Dict[float, MetaClassifier] = {}
        for c in meta_classifier or ():
            if c.scorer != scorer:
                raise InvalidValueError(
                    f'the meta classifier was fitted on '
                    f'{c.scorer!r} segments, not {scorer!r}')
            self.classifiers[c.threshold] = c
        if thresholds is None:
            thresholds = sorted(self.classifiers) or \
                DEFAULT_SEGMENT_THRESHOLDS
        self.thresholds = sorted(set(check_thresholds(thresholds))
                                 | set(self.classifiers))
        self.scorer = scorer
        self.ignore_index = ignore_index
        self.last_data: Optional[Dict[float, SegmentData]] = None
        self.last_results: Optional[Dict[str, dict]] = None

    def process_sample(self, sample: dict) -> None:
        where = sample.get('img_path', '?')
        scores = sample.get('ood_scores')
        if scores is None or self.scorer not in scores:
            have = sorted(scores) if scores else []
            raise MissingFieldError(
                f'OODSegmentMetric: no {self.scorer!r} score map in the data '
                f'sample ({where}; scored: {have}); score it with an '
                'OODScoringHook')
        if 'gt_sem_seg' not in sample:
            raise MissingFieldError(
                'OODSegmentMetric: data sample has no OOD label '
                f'map gt_sem_seg ({where})')
        logits = torch.as_tensor(to_numpy(sample['seg_logits']['data']))
        probs = torch.softmax(logits.float(), dim=0)
        labels = to_numpy(sample['gt_sem_seg']['data']).squeeze(0)
        score = to_numpy(scores[self.scorer])
        if score.shape == labels.shape:
            # NaN / Inf on void pixels only: they are in no segment
            check_finite(score.reshape(-1), flat_ood_labels(
                labels, self.ignore_index, where), self.scorer)
        per_t = image_segments(probs, score, self.thresholds, labels,
                               self.ignore_index)
        for t, segs in zip(self.thresholds, per_t):
            self.accumulator(('segments', t),
                             lambda t=t: SegmentTable(t)).update(
                                 where, segs)

    def compute_accumulated(self, local) -> dict:
        merged = merge_across_ranks(local, lambda k: SegmentTable(k[1]))
        self.last_data, self.last_results = {}, {}
        out = {}
        for t in self.thresholds:
            table = merged.get(('segments', t)) or SegmentTable(t)
            data = self.last_data[t] = table.compute()
            clf = self.classifiers.get(t)
            p_tp = None
            if clf is not None and data.num_classes:
                clf.check_num_classes(data.num_classes, 'OODSegmentMetric')
                ev = data.evaluated
                p_tp = clf.tp_probability(
                    clf.select(data.features[ev], data.feature_names))
            row = self.last_results[threshold_key(t)] = segment_results(
                data, p_tp)
            for variant, meta in (('baseline', False), ('meta', True)):
                name = threshold_name(self.scorer, t, meta)
                for k, v in (row[variant] or {}).items():
                    out[f'{name}/{k}'] = v
                judge = 'meta' if meta else 'msp'
                if row[f'{judge}_auroc'] is not None:
                    for k in ('auroc', 'auprc'):
                        out[f'{name}/fp_{k}'] = row[f'{judge}_{k}']
        return out
