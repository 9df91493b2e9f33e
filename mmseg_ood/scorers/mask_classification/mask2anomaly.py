"""Mask2Anomaly's post-hoc score, with its stuff-mask refinement."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ...errors import InvalidTypeError, InvalidValueError
from ..base import OOD_SCORERS, BaseScorer, ScoreInputs, check_number

#: Mask2Anomaly's stuff classes on Cityscapes (train ids 2-10: building,
#: wall, fence, pole, traffic light, traffic sign, vegetation, terrain,
#: sky); road and sidewalk, where road anomalies lie, are not suppressed.
CITYSCAPES_STUFF = (2, 3, 4, 5, 6, 7, 8, 9, 10)
#: The same rule on the synthetic street benchmark
#: (``mmseg_ood.synthetic.STREET_CLASSES``): building, vegetation, sky.
SYNTHETIC_STREET_STUFF = (2, 3, 4)


@OOD_SCORERS.register_module('mask2anomaly')
class Mask2Anomaly(BaseScorer):
    """``S(x) = 1 - max_{k <= K} f_k(x)``, with masks of confident "stuff"
    queries suppressed, optionally averaged over a horizontal flip; mask
    classification only.

    ``f_k(x) = sum_q p_q(k) sigmoid(m_q(x))`` are the head's per-pixel
    class scores (mmseg's ``seg_logits`` for MaskFormer / Mask2Former),
    ``p_q = softmax(c_q)`` over the K known classes and "no object". The
    score is high where no known class claims the pixel. Its range is
    ``[1 - Q, 1]`` (``f`` is not normalised). Higher = more OOD.

    **Stuff suppression** (the paper's mask refinement, against false
    positives on the background): a query q is a confident stuff query if
    its most likely class over all K + 1, ``l_q = argmax_k p_q(k)``, is one
    of ``stuff_classes`` and ``p_q(l_q) > query_threshold``; where any such
    query has ``p_q(l_q) sigmoid(m_q(x)) >= mask_threshold`` the score is
    multiplied by 0. As in the authors' code the score is *set to 0*, not
    to its minimum: where queries overlap, ``1 - max f`` is negative, so a
    suppressed pixel is not always ranked as the most inlier.

    **Flip** (``flip=True``): ``(S(x) + flip(S(flip(x)))) / 2``, the score
    of the image and that of its horizontal flip, flipped back. This needs
    a second forward pass of the whole model, which
    :class:`~mmseg_ood.models.OODScoring` runs (``requires_flip``);
    ``scorer(inputs)`` alone scores one pass.

    The exact form follows the authors' code (github.com/shyam671/
    Mask2Anomaly-Unmasking-Anomalies-in-Road-Scene-Segmentation):
    ``mask2former/maskformer_model.py``, ``MaskFormer.semantic_inference``
    (the kept stuff queries: ``labels.ne(num_classes) & (scores > 0.95) &
    (labels < 11) & (labels > 1)``, i.e. Cityscapes train ids 2-10, each
    appended as ``score * sigmoid(mask)``) and
    ``anomaly_utils/anomaly_inference.py`` (``1 - max`` over the channels,
    times ``1 - [max stuff channel >= 0.5]``, the image and its
    ``np.fliplr`` averaged). Deviations, each without effect on their
    setting: (a) their ``max`` also runs over the appended stuff channels
    (``predictions[0:19]`` slices the batch axis), which cannot change it,
    since ``f_{l_q} >= p_q(l_q) sigmoid(m_q)``; (b) they suppress only when
    at least two stuff queries are kept (``shape[0] > 1``), here one
    suffices; (c) they threshold the masks after resizing to the output
    size, here at the head's size before mmseg's resize.

    Args:
        stuff_classes: Indices of the known classes whose confident masks
            suppress the score; empty (the default) for none, the score
            then being ``1 - max_k f_k``. The paper's Cityscapes choice is
            :data:`CITYSCAPES_STUFF` (2-10, building to sky: not road and
            sidewalk); on the synthetic street benchmark,
            :data:`SYNTHETIC_STREET_STUFF` (2, 3, 4: building, vegetation,
            sky). On the command line:
            ``'mask2anomaly:stuff_classes=[2,3,4]'``.
        flip: Average with the horizontally flipped image (a second
            forward pass).
        query_threshold: A stuff query is kept if its top class probability
            is ``> query_threshold``, in ``[0, 1)``; the authors' 0.95.
        mask_threshold: Pixels where a kept query's ``p_q(l_q)
            sigmoid(m_q)`` is ``>= mask_threshold``, in ``(0, 1]``, are
            suppressed; the authors' 0.5.

    Shape:
        ``(N, K, H, W) -> (N, H, W)``; with ``stuff_classes`` also
        ``query_logits`` ``(N, Q, K + 1)`` and ``mask_probs`` ``(N, Q, H,
        W)``.

    References:
        Rai, Cermelli, Fontanel, Masone & Caputo, "Unmasking Anomalies in
        Road-Scene Segmentation", ICCV 2023 (the anomaly score ``1 - max_c
        L_c``, mask refinement); Rai, Cermelli, Caputo & Masone,
        "Mask2Anomaly: Mask Transformer for Universal Open-set
        Segmentation", TPAMI 2024, arXiv:2309.04573. The form follows the
        authors' code (above): the papers were not available here.
    """
    name = 'mask2anomaly'
    requires_mask_head = True

    def __init__(self, stuff_classes: Sequence[int] = (), flip: bool = False,
                 query_threshold: float = 0.95, mask_threshold: float = 0.5):
        self.stuff_classes = _check_classes(stuff_classes)
        if not isinstance(flip, bool):
            raise InvalidTypeError(f'`flip` must be True or False, got '
                                   f'{type(flip).__name__} {flip!r}')
        self.flip = flip
        self.query_threshold = check_number('query_threshold',
                                            query_threshold, 0.0)
        if self.query_threshold >= 1:
            raise InvalidValueError('`query_threshold` must be in [0, 1), '
                                    f'got {self.query_threshold}')
        self.mask_threshold = check_number('mask_threshold', mask_threshold,
                                           0.0, low_open=True)
        if self.mask_threshold > 1:
            raise InvalidValueError('`mask_threshold` must be in (0, 1], '
                                    f'got {self.mask_threshold}')
        # per instance: the queries are needed only to find stuff masks
        self.requires_queries = bool(self.stuff_classes)
        self.requires_flip = flip

    def score(self, inputs: ScoreInputs) -> Tensor:
        f = inputs.logits.float()
        out = 1 - f.max(dim=1).values
        if not self.stuff_classes:
            return out
        num_classes = f.shape[1]
        if max(self.stuff_classes) >= num_classes:
            raise InvalidValueError(
                f'`stuff_classes` {list(self.stuff_classes)} name classes '
                f'outside the model\'s {num_classes} (0 to '
                f'{num_classes - 1})')
        top, label = torch.softmax(inputs.query_logits.float(),
                                   dim=-1).max(dim=-1)  # (N, Q), over K + 1
        stuff = torch.tensor(self.stuff_classes, device=label.device)
        kept = torch.isin(label, stuff) & (top > self.query_threshold)
        masks = inputs.mask_probs.float()
        weight = (top * kept).view(*kept.shape, *([1] * (masks.dim() - 2)))
        # queries not kept weigh 0, which is below any mask_threshold
        stuff_mass = (weight * masks).max(dim=1).values
        return torch.where(stuff_mass >= self.mask_threshold,
                           torch.zeros_like(out), out)

    def __repr__(self) -> str:
        return (f'Mask2Anomaly(stuff_classes={list(self.stuff_classes)}, '
                f'flip={self.flip}, query_threshold={self.query_threshold}, '
                f'mask_threshold={self.mask_threshold})')


def _check_classes(classes) -> tuple:
    """``stuff_classes`` as a sorted tuple of distinct ints >= 0."""
    if isinstance(classes, (str, bytes)) or not isinstance(
            classes, (list, tuple)):
        raise InvalidTypeError(
            '`stuff_classes` must be a list of class indices, e.g. [2, 3, '
            f'4], got {type(classes).__name__} {classes!r}')
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, int):
            raise InvalidTypeError(
                '`stuff_classes` must hold class indices (ints), got '
                f'{type(c).__name__} {c!r} in {list(classes)}')
        if c < 0:
            raise InvalidValueError(
                f'`stuff_classes` must be >= 0, got {c} in {list(classes)}')
    if len(set(classes)) != len(classes):
        raise InvalidValueError(
            f'`stuff_classes` names a class twice: {list(classes)}')
    return tuple(sorted(classes))
