"""Maskomaly: anomaly masks of selected queries with known-class rejection.

Ackermann, Sakaridis & Yu, "Maskomaly: Zero-Shot Mask Anomaly
Segmentation", BMVC 2023 (arXiv 2305.16972). The paper was not available
here; the score and the query selection follow the authors' public code
(github.com/jan-ackermann/Maskomaly: ``maskomaly/model.py``,
``Maskomaly.get_soft_mask``, and ``maskomaly/anomaly_overlap.py``), with
the deviations listed in :class:`Maskomaly`. The selection is fitted on a
labelled reference set (``tools/ood_test.py --tune-on``, see
:mod:`mmseg_ood.engine.query_selection`) and kept in a JSON file
(:class:`QuerySelection`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from ...errors import DamagedFileError, InvalidTypeError, InvalidValueError
from ...utils.files import (check_schema_version, dump_json, expect_field,
                           load_json)
from ..base import OOD_SCORERS, BaseScorer, ScoreInputs, check_number

__all__ = ['Maskomaly', 'QuerySelection', 'SELECTION_CRITERIA',
           'QUERY_SELECTION_SCHEMA_VERSION']

#: How the queries are ranked: ``'iou'``, the mean per-image IoU of the
#: thresholded mask with the OOD pixels (the authors' code); ``'ap'``, the
#: pixel AP of the mask probability as an OOD score.
SELECTION_CRITERIA = ('iou', 'ap')

#: Version of the query-selection file :meth:`QuerySelection.save` writes.
QUERY_SELECTION_SCHEMA_VERSION = 1

_KIND = 'maskomaly_query_selection'
_HOW_TO_FIT = (
    'select them on a labelled reference set with tools/ood_test.py CONFIG '
    'CHECKPOINT --scorers maskomaly --tune-on DATASET (a dataset preset not '
    'among --datasets), or pass maskomaly:queries_file=FILE (the '
    'maskomaly_queries_<dataset>.json such a run writes in its work dir)')


@dataclass
class QuerySelection:
    """Per-query OOD statistics of a mask-classification model on a
    labelled reference set, and what they were computed on.

    The file behind ``maskomaly:queries_file=...``. Written by
    :meth:`save` (atomically, with a schema version), read back by
    :meth:`load`, which names the file and the field of anything malformed.

    Args:
        num_queries: Q, the model's number of queries.
        iou: ``(Q,)`` each query's mean per-image IoU of ``{sigmoid(m_q) >
            mask_threshold}`` with the OOD pixels, over the reference
            images that have OOD pixels (``None``: undefined).
        ap: ``(Q,)`` each query's pixel AP (step-wise, sklearn's
            ``average_precision_score``, OOD positive) of ``sigmoid(m_q)``
            as an OOD score, pooled over the reference set (``None``:
            undefined).
        mask_threshold: The threshold of the IoU.
        reference: What the statistics were computed on: ``dataset`` (the
            preset's name), ``preset`` (its file), ``images``,
            ``images_with_ood``.
        binding: The model they belong to: ``checkpoint_sha256``,
            ``checkpoint``, ``config``.
    """
    num_queries: int
    iou: List[Optional[float]]
    ap: List[Optional[float]]
    mask_threshold: float = 0.9
    reference: dict = field(default_factory=dict)
    binding: dict = field(default_factory=dict)

    def __post_init__(self):
        n = self.num_queries
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidValueError(
                f'`num_queries` must be an int >= 1, got {n!r}')
        for key in SELECTION_CRITERIA:
            values = getattr(self, key)
            if len(values) != n:
                raise InvalidValueError(
                    f'`{key}` must have one value per query ({n}), got '
                    f'{len(values)}')
            setattr(self, key, [
                None if v is None or not math.isfinite(v) else float(v)
                for v in values])

    def ranking(self, select_by: str = 'iou') -> List[int]:
        """The queries, best first by ``select_by`` (ties: the lower
        index first; undefined values last).

        Args:
            select_by: One of :data:`SELECTION_CRITERIA`.
        """
        values = getattr(self, _check_criterion(select_by))
        return sorted(range(self.num_queries),
                      key=lambda q: (values[q] is None,
                                     -(values[q] or 0.0), q))

    def top(self, k: int, select_by: str = 'iou') -> List[int]:
        """The ``k`` best queries by ``select_by``.

        Args:
            k: How many, ``1 <= k <= num_queries``.
            select_by: One of :data:`SELECTION_CRITERIA`.

        Raises:
            ValueError: ``k`` out of range, or one of the ``k`` has no
                defined value (the reference set has no OOD pixels).
        """
        k = _check_top_k(k)
        if k > self.num_queries:
            raise InvalidValueError(
                f'`top_k` ({k}) exceeds the {self.num_queries} queries of '
                'the selection')
        chosen = self.ranking(select_by)[:k]
        values = getattr(self, select_by)
        if any(values[q] is None for q in chosen):
            raise InvalidValueError(
                f'the query selection has no {select_by} for queries '
                f'{[q for q in chosen if values[q] is None]}: its reference '
                f"set {self.reference.get('dataset')!r} has no OOD pixels")
        return chosen

    def to_dict(self) -> dict:
        """The file's contents (JSON values)."""
        return dict(schema_version=QUERY_SELECTION_SCHEMA_VERSION,
                    kind=_KIND, num_queries=self.num_queries,
                    mask_threshold=self.mask_threshold,
                    per_query=dict(iou=list(self.iou), ap=list(self.ap)),
                    reference=dict(self.reference),
                    binding=dict(self.binding))

    def save(self, path: str) -> None:
        """Write the selection to ``path`` as JSON, atomically.

        Args:
            path: The file (its folder must exist).
        """
        dump_json(self.to_dict(), path, what='query selection file')

    @classmethod
    def load(cls, path: str) -> 'QuerySelection':
        """Read a file written by :meth:`save`.

        Args:
            path: The file.

        Raises:
            MissingInputError: no such file.
            DamagedFileError: not JSON, another kind of file, a newer
                schema, or a missing / mistyped field (named).
        """
        what = 'query selection file'
        data = load_json(path, what)
        check_schema_version(data, path, what, QUERY_SELECTION_SCHEMA_VERSION,
                             oldest=1)
        where = f'{what} {path}'
        kind = expect_field(data, 'kind', str, where)
        if kind != _KIND:
            raise DamagedFileError(
                f'{where}: `kind` is {kind!r}, not {_KIND!r}: not a '
                'maskomaly query selection')
        n = expect_field(data, 'num_queries', int, where)
        per_query = expect_field(data, 'per_query', dict, where)
        lists = {}
        for key in SELECTION_CRITERIA:
            values = expect_field(per_query, key, list, f'{where}: per_query')
            if len(values) != n or not all(
                    v is None or (isinstance(v, (int, float))
                                  and not isinstance(v, bool))
                    for v in values):
                raise DamagedFileError(
                    f'{where}: per_query.{key} must hold {n} numbers (null '
                    'where undefined), one per query')
            lists[key] = values
        try:
            return cls(num_queries=n,
                       mask_threshold=float(expect_field(
                           data, 'mask_threshold', float, where)),
                       reference=expect_field(data, 'reference', dict, where),
                       binding=expect_field(data, 'binding', dict, where),
                       **lists)
        except InvalidValueError as e:
            raise DamagedFileError(f'{where}: {e}') from None

    def check_model(self, num_queries: int,
                    checkpoint_sha256: Optional[str] = None,
                    where: str = 'query selection') -> None:
        """Refuse a selection made for another model.

        Args:
            num_queries: Q of the model it is applied to.
            checkpoint_sha256: SHA-256 of that model's checkpoint file;
                ``None``: not checked.
            where: How messages name the selection (e.g. its file).

        Raises:
            ValueError: another number of queries, or another checkpoint.
        """
        if num_queries != self.num_queries:
            raise InvalidValueError(
                f'{where} was fitted on a model with {self.num_queries} '
                f'queries; this model has {num_queries}: {_HOW_TO_FIT}')
        bound = self.binding.get('checkpoint_sha256')
        if checkpoint_sha256 is not None and bound != checkpoint_sha256:
            raise InvalidValueError(
                f"{where} belongs to another checkpoint "
                f"({self.binding.get('checkpoint', 'unknown')}, SHA-256 "
                f"{str(bound)[:12]}...), not this one (SHA-256 "
                f'{checkpoint_sha256[:12]}...): {_HOW_TO_FIT}')


def _check_criterion(select_by) -> str:
    if select_by not in SELECTION_CRITERIA:
        raise InvalidValueError(f'`select_by` must be one of '
                                f'{SELECTION_CRITERIA}, got {select_by!r}')
    return select_by


def _check_top_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise InvalidTypeError(
            f'`top_k` must be an int >= 1, got {type(k).__name__} {k!r}')
    if k < 1:
        raise InvalidValueError(f'`top_k` must be an int >= 1, got {k}')
    return k


def _check_probability(name: str, value, high_open: bool = False) -> float:
    value = check_number(name, value, 0.0)
    if value > 1.0 or (high_open and value == 1.0):
        raise InvalidValueError(f'`{name}` must be in [0, 1'
                                f"{')' if high_open else ']'}, got {value}")
    return value


@OOD_SCORERS.register_module('maskomaly')
class Maskomaly(BaseScorer):
    """Maskomaly: ``S(x) = lambda R(x) + (1 - lambda) A(x)``, mask
    classification only.

    With ``p_q = softmax(c_q)`` over all of query q's classes ("no object"
    included), ``pi_q = max_k p_q(k)`` its confidence, ``k_q`` its argmax
    and ``sigma_q(x) = sigmoid(m_q(x))`` its mask:

    - the anomaly term, from the selected queries ``Sel`` (the queries
      that respond to anomalies, chosen on a labelled reference set):
      ``A(x) = max_{q in Sel} pi_q sigma_q(x)``;
    - the rejection term, from the queries that confidently predict a
      known class, ``Rej = {q : k_q < K, pi_q > confidence}``:
      ``R(x) = min(1, min_{q in Rej} (1 - pi_q sigma_q(x)))``, 1 where no
      known class claims the pixel;
    - borders (``remove_borders``): ``R(x) = 0`` where two or more queries
      predicting a known class (``k_q < K``, any confidence) have
      ``sigma_q(x) > border_threshold``, i.e. on the borders between known
      objects, where masks overlap.

    ``lambda = rejection_weight`` (0.6 in the authors' code: "any lambda >
    0.5 is fine"). ``S`` is in ``[0, 1]``; higher = more OOD. ``K`` is the
    number of known classes (the channels of ``logits``): "no object" and
    any negative classes of the head come after them.

    The selection: each query's mean per-image IoU of ``{sigma_q >
    0.9}`` with the OOD pixels of the reference set (``select_by='iou'``,
    the authors' ``anomaly_overlap.py``), or its pixel AP with
    ``sigma_q`` as the OOD score (``select_by='ap'``, step-wise AP as
    sklearn's ``average_precision_score``), both computed in one streaming
    pass (:mod:`mmseg_ood.engine.query_selection`) and kept in the file;
    the ``top_k`` best are ``Sel``.

    Deviations from the authors' code: (1) their final step, which also
    rejects the masks of two hard-coded queries "ranked by importance for
    predicting ground" on Cityscapes (indices 19 and 24 of their Swin-L
    model), is left out: it is specific to one checkpoint, and no
    procedure to find such queries is published. (2) Their IoU subtracts
    every void pixel of the image from the mask's size; here void pixels
    are left out of the mask exactly, and images without OOD pixels are
    left out of the mean (their reference set, SMIYC validation, has OOD
    pixels in every image). (3) They take ``--masks`` queries (default 4)
    bitwise-or'ed with the number of queries of mean IoU >= 0.25
    (``int(args.masks) | np.argmax(cp < 0.25)``, which looks unintended);
    here exactly ``top_k``, default 4 (their default, and the number of
    query indices they ship). (4) The maps are computed at the head's
    output resolution and resized with the other scores (bilinear); they
    resize the final map to the image with ``INTER_AREA``.

    Args:
        queries_file: A query-selection file (:class:`QuerySelection`,
            written by ``tools/ood_test.py --scorers maskomaly --tune-on
            DATASET``); ``Sel`` is its ``top_k`` best queries by
            ``select_by``.
        queries: The selected query indices themselves (e.g. the authors'
            ``[49, 31, 83, 32]`` for their Cityscapes Swin-L model), instead
            of a file; ``top_k`` and ``select_by`` are then not used.
        top_k: How many queries to select from ``queries_file`` (>= 1).
        select_by: ``'iou'`` (the authors' criterion) or ``'ap'``.
        rejection_weight: ``lambda`` in ``[0, 1]``; 0 gives the anomaly
            term alone.
        confidence: A query rejects its mask's pixels when its known class
            has probability above this, in ``[0, 1)`` (0.7 as the authors).
        border_threshold: Mask probability above which a known-class query
            covers a pixel for border removal, in ``[0, 1)`` (0.1 as the
            authors).
        remove_borders: Set ``R = 0`` where known-class masks overlap.

    Without ``queries_file`` or ``queries`` the scorer builds but refuses to
    score, saying how to fit a selection.

    Shape:
        ``(N, K, H, W) -> (N, H, W)``, with ``query_logits`` ``(N, Q, K +
        1)`` and ``mask_probs`` ``(N, Q, H, W)``.

    References:
        Ackermann, Sakaridis & Yu, "Maskomaly: Zero-Shot Mask Anomaly
        Segmentation", BMVC 2023, arXiv 2305.16972 (not read here: the
        formula follows the authors' code, ``maskomaly/model.py``
        ``Maskomaly.get_soft_mask`` and ``maskomaly/anomaly_overlap.py``,
        github.com/jan-ackermann/Maskomaly).
    """
    name = 'maskomaly'
    requires_queries = True

    def __init__(self, queries_file: Optional[str] = None,
                 queries: Optional[Sequence[int]] = None, top_k: int = 4,
                 select_by: str = 'iou', rejection_weight: float = 0.6,
                 confidence: float = 0.7, border_threshold: float = 0.1,
                 remove_borders: bool = True):
        self.top_k = _check_top_k(top_k)
        self.select_by = _check_criterion(select_by)
        self.rejection_weight = _check_probability('rejection_weight',
                                                   rejection_weight)
        self.confidence = _check_probability('confidence', confidence,
                                             high_open=True)
        self.border_threshold = _check_probability('border_threshold',
                                                   border_threshold,
                                                   high_open=True)
        if not isinstance(remove_borders, bool):
            raise InvalidTypeError('`remove_borders` must be a bool, got '
                                   f'{remove_borders!r}')
        self.remove_borders = remove_borders
        if queries_file is not None and queries is not None:
            raise InvalidValueError(
                'give `queries_file` or `queries`, not both')
        self.queries_file = queries_file
        self.selection: Optional[QuerySelection] = None
        self.queries: Optional[List[int]] = None
        if queries is not None:
            self.queries = _check_queries(queries)
        elif queries_file is not None:
            self.selection = QuerySelection.load(queries_file)
            self.queries = self.selection.top(self.top_k, self.select_by)

    def score(self, inputs: ScoreInputs) -> Tensor:
        if self.queries is None:
            raise InvalidValueError(
                "scorer 'maskomaly' has no query selection: "
                f'{_HOW_TO_FIT}')
        probs = torch.softmax(inputs.query_logits.float(), dim=-1)
        masks = inputs.mask_probs.float()
        n, q = probs.shape[:2]
        if self.selection is not None and \
                q != self.selection.num_queries:
            self.selection.check_model(q, where=self.queries_file)
        if max(self.queries) >= q:
            raise InvalidValueError(
                f"scorer 'maskomaly': selected queries {self.queries} are "
                f'out of range for a model with {q} queries')
        confidence, label = probs.max(dim=-1)  # (N, Q)
        known = label < inputs.logits.shape[1]
        spatial = (1, ) * (masks.dim() - 2)
        weighted = masks * confidence.view(n, q, *spatial)
        anomaly = weighted[:, self.queries].amax(dim=1)
        rejecting = (known & (confidence > self.confidence)).view(
            n, q, *spatial)
        rejection = torch.where(rejecting, 1.0 - weighted,
                                torch.ones_like(weighted)).amin(dim=1)
        if self.remove_borders:
            covering = (masks > self.border_threshold) & known.view(
                n, q, *spatial)
            rejection = rejection.masked_fill(covering.sum(dim=1) >= 2, 0.0)
        lam = self.rejection_weight
        return lam * rejection + (1.0 - lam) * anomaly

    def __repr__(self) -> str:
        return (f'Maskomaly(queries={self.queries}, rejection_weight='
                f'{self.rejection_weight}, confidence={self.confidence}, '
                f'border_threshold={self.border_threshold}, remove_borders='
                f'{self.remove_borders})')


def _check_queries(queries) -> List[int]:
    if isinstance(queries, (str, bytes)) or not isinstance(queries, Sequence)\
            or not queries:
        raise InvalidTypeError('`queries` must be a non-empty list of query '
                               f'indices, got {queries!r}')
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0
           for v in queries):
        raise InvalidValueError('`queries` must hold ints >= 0, got '
                                f'{list(queries)!r}')
    if len(set(queries)) != len(queries):
        raise InvalidValueError(
            f'`queries` names a query twice: {list(queries)!r}')
    return list(queries)
