"""Union-over-Intersection and IoU losses from expected intersection and
union of softmax probabilities (segnet paper, eq. 6-8, 24, 28, 47, 60)."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from ...errors import InvalidValueError
from ...labels import IGNORE_INDEX
from ...utils.arguments import strict_arguments
from .class_labels import class_labels
from .loss_name import check_loss_name


def _target_probabilities(target: Tensor, num_classes: int,
                          ignore_index: int) -> Tuple[Tensor, Tensor]:
    """One-hot (or given soft) labels ``(N, C, H, W)`` and the valid mask
    ``(N, H, W)``."""
    if target.is_floating_point():  # soft labels, (N, C, H, W)
        if target.shape[1] != num_classes:
            raise InvalidValueError(
                f'soft labels have {target.shape[1]} classes, '
                f'the prediction {num_classes}')
        if (target < 0).any() or not torch.isfinite(target).all():
            raise InvalidValueError('soft labels must be finite and >= 0')
        return target, target.sum(dim=1) > 0
    valid = target != ignore_index
    safe = class_labels(target, valid, num_classes,
                        f'ignore_index={ignore_index}')
    onehot = F.one_hot(safe, num_classes).movedim(-1, 1).to(torch.float32)
    return onehot, valid


def expected_intersection_union(pred: Tensor,
                                target: Tensor,
                                ignore_index: int = IGNORE_INDEX,
                                weight: Optional[Tensor] = None,
                                label_patch: int = 1):
    """Per-class expected intersection, union and label mass over the batch.

    ``E[I_k] = sum_i p^_ik p_ik`` (eq. 24) and
    ``E[U_k] = sum_i (p^_ik + p_ik - p^_ik p_ik)`` (eq. 28), summed over
    every valid pixel ``i`` of the minibatch, with ``p^ = softmax(pred)``
    (eq. 20) and ``p`` the one-hot (or soft) labels.

    Args:
        pred: Logits ``(N, C, H, W)`` (or ``(N, C)``).
        target: Class indices ``(N, H, W)`` with ``ignore_index`` for void,
            or soft labels ``(N, C, H, W)`` (float; pixels whose labels sum
            to 0 are void).
        ignore_index: Void label of hard targets.
        weight: Optional per-pixel weight ``(N, H, W)``.
        label_patch: Side ``f`` of the non-overlapping patches over which
            labels and prediction are pooled first (1: per pixel). With
            ``f > 1`` each patch ``j`` of valid-pixel weight ``w_j`` (the
            weighted count of its valid pixels) carries the soft label
            ``p_jk``, its class distribution (the paper's down-sampled soft
            ground truth, sec. 3.1), and the prediction ``p^_jk``, the mean
            softmax over its valid pixels; ``E[I_k] = sum_j w_j p^_jk
            p_jk`` and ``E[U_k] = sum_j w_j (p^_jk + p_jk - p^_jk p_jk)``.
            The label mass is unchanged; ``H`` and ``W`` must be multiples
            of ``f`` (``(N, C, H, W)`` inputs only).

    Returns:
        tuple: ``E[I]``, ``E[U]`` and the label mass ``sum_i p_ik``, each
        ``(C,)`` float32 (float64 for float64 logits).
    """
    if pred.dim() < 2:
        raise InvalidValueError(
            f'pred must be (N, C, ...), got {tuple(pred.shape)}')
    soft = target.is_floating_point()
    expected = tuple(pred.shape) if soft else (pred.shape[0], ) + tuple(
        pred.shape[2:])
    if tuple(target.shape) != expected:
        raise InvalidValueError(
            f'target {tuple(target.shape)} does not match pred '
            f'{tuple(pred.shape)}: expected {expected}')
    dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    prob = pred.to(dtype).softmax(dim=1)
    labels, valid = _target_probabilities(target, pred.shape[1], ignore_index)
    labels = labels.to(dtype)
    mask = valid.to(dtype)
    if weight is not None:
        mask = mask * weight.to(dtype)
    mask = mask.unsqueeze(1)
    if label_patch != 1:
        prob, labels, mask = _pooled(prob, labels, mask, label_patch)
    dims = [0] + list(range(2, pred.dim()))
    inter = (prob * labels * mask).sum(dims)
    union = ((prob + labels - prob * labels) * mask).sum(dims)
    return inter, union, (labels * mask).sum(dims)


def _pooled(prob: Tensor, labels: Tensor, mask: Tensor,
            patch: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Patch means of ``prob`` and ``labels`` over the valid pixels, and
    each patch's weight ``(N, 1, H/f, W/f)`` (see
    :func:`expected_intersection_union`, ``label_patch``)."""
    if prob.dim() != 4 or prob.shape[2] % patch or prob.shape[3] % patch:
        raise InvalidValueError(
            f'`label_patch`={patch} needs (N, C, H, W) logits '
            'with H and W multiples of it, got '
            f'{tuple(prob.shape)}')
    area = float(patch * patch)
    weight = F.avg_pool2d(mask, patch) * area
    safe = weight.clamp_min(torch.finfo(weight.dtype).tiny)
    prob = F.avg_pool2d(prob * mask, patch) * area / safe
    labels = F.avg_pool2d(labels * mask, patch) * area / safe
    return prob, labels, weight


class _ExpectedOverlapLoss(nn.Module):
    """Shared mmseg loss plumbing of :class:`UOILoss` and :class:`IoULoss`."""
    default_name = ''

    def __init__(self,
                 loss_weight: float = 1.0,
                 eps: float = 1e-6,
                 label_patch: int = 1,
                 min_class_pixels: float = 0.0,
                 loss_name: Optional[str] = None):
        super().__init__()
        if eps <= 0:
            raise InvalidValueError(f'`eps` must be > 0, got {eps}')
        if isinstance(label_patch, bool) or not isinstance(label_patch, int) \
                or label_patch < 1:
            raise InvalidValueError('`label_patch` must be an int >= 1, got '
                                    f'{label_patch!r}')
        self.loss_weight = float(loss_weight)
        self.eps = float(eps)
        self.label_patch = label_patch
        if not min_class_pixels >= 0:
            raise InvalidValueError('`min_class_pixels` must be >= 0, got '
                                    f'{min_class_pixels!r}')
        self.min_class_pixels = float(min_class_pixels)
        self._loss_name = check_loss_name(loss_name or self.default_name)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: int = IGNORE_INDEX,
                **kwargs) -> Tensor:
        inter, union, mass = expected_intersection_union(
            pred, target, ignore_index, weight, self.label_patch)
        present = mass > self.min_class_pixels
        if not present.any():  # all void (or every class below
            # min_class_pixels): no signal, keep the graph
            return pred.sum() * 0.0
        ratio = self.per_class(inter[present], union[present])
        # kept in float32 (or float64) for float16 / bfloat16 logits (mixed
        # precision): a UOI term reaches 1e5 where a class is missed, past
        # float16's largest value (65504), as losses stay float32 under
        # torch.autocast
        return self.loss_weight * ratio.mean()

    def diagnostics(self,
                    pred: Tensor,
                    target: Tensor,
                    weight: Optional[Tensor] = None,
                    ignore_index: int = IGNORE_INDEX,
                    border: int = 8,
                    **kwargs) -> dict:
        """The class with the largest per-class term of this batch, and
        where its labelled pixels are (logged by
        :class:`~mmseg_ood.models.losses.MonitoredLoss`).

        Returns:
            dict: ``max_term`` (its per-class term), ``max_term_class``
            (its index), ``max_term_pixels`` (its label mass in the batch),
            ``max_term_inter`` (its ``E[I]``), ``max_term_border``
            (the share of its label mass within ``border`` pixels of a crop
            edge; NaN for ``(N, C)`` inputs), and ``classes_present``.
            Empty if every pixel is void.
        """
        inter, union, mass = expected_intersection_union(
            pred, target, ignore_index, weight, self.label_patch)
        present = mass > self.min_class_pixels
        if not present.any():
            return {}
        terms = torch.full_like(inter, -float('inf'))
        terms[present] = self.per_class(inter[present], union[present])
        k = int(terms.argmax())
        near_edge = float('nan')
        if pred.dim() == 4:
            labels, valid = _target_probabilities(target, pred.shape[1],
                                                  ignore_index)
            m = labels[:, k] * valid
            inner = m[:, border:-border, border:-border].sum() \
                if min(m.shape[1:]) > 2 * border else m.new_zeros(())
            near_edge = float(1 - inner / m.sum())
        return dict(max_term=float(terms[k]), max_term_class=k,
                    max_term_pixels=float(mass[k]),
                    max_term_inter=float(inter[k]),
                    max_term_border=near_edge,
                    classes_present=int(present.sum()))

    def per_class(self, inter: Tensor, union: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def loss_name(self) -> str:
        return self._loss_name


@MODELS.register_module()
@strict_arguments
class UOILoss(_ExpectedOverlapLoss):
    """Union over Intersection: ``(1/K') sum_k E[U_k] / E[I_k]``.

    Eq. 6-8 / 60 of the SegNet structured-loss paper with expectations over
    the softmax probabilities of every pixel of the minibatch (eq. 24, 28).
    It is >= 1 and equals 1 only for a perfect, confident prediction; its
    gradient grows with the number of mistakes (eq. 9-10), unlike IoU's.
    The gradient w.r.t. the logits is eq. 67 divided by ``K'``.

    Classes absent from the batch's labels (``sum_i p_ik = 0``) are left
    out: their expected intersection is 0, so ``E[U]/E[I]`` is undefined;
    ``K'`` counts the classes present. False positives of an absent class
    are still penalised through the union of the classes that are present
    (their probability mass is taken from those), and by the cross entropy
    usually combined with it (the paper's best: 0.7 UOI + 0.3 CE, through
    mmseg's list of ``loss_decode``). ``E[I_k]`` is clamped at ``eps``.
    A batch with no valid pixel (or, with ``min_class_pixels``, no class
    above it) gives 0.

    Args:
        loss_weight: Factor of the loss.
        eps: Lower bound of the expected intersection.
        label_patch: Pool labels and prediction over ``f x f`` patches
            first (the paper's coarse soft labels, sec. 3.1; see
            :func:`expected_intersection_union`); 1: per pixel.
        min_class_pixels: **A deviation from the paper, off by default
            (0).** Classes whose label mass in the batch is at most this
            many pixels are left out of the mean like absent classes:
            ``(1/K'') sum_{k: sum_i p_ik > m} E[U_k] / E[I_k]``. A class
            present only as a fragment the model misses has ``E[I_k]``
            near 0 and a term that dwarfs the others
            (``docs/en/results/training_comparisons.md``, "UOI + CE: why
            it collapsed"); this drops such terms.
        loss_name: Key in the loss dict (must start with ``loss_``).

    Example:
        >>> loss_decode = [dict(type='UOILoss', loss_weight=0.7),
        ...                dict(type='CrossEntropyLoss', loss_weight=0.3)]

    References:
        "Combining the Best of Graphical Models and ConvNets for Semantic
        Segmentation", eq. 6-10; supplement eq. 24, 28, 60, 67.
    """
    default_name = 'loss_uoi'

    def per_class(self, inter: Tensor, union: Tensor) -> Tensor:
        return union / inter.clamp_min(self.eps)


@MODELS.register_module()
@strict_arguments
class IoULoss(_ExpectedOverlapLoss):
    """Expected IoU loss for comparison: ``1 - (1/K') sum_k E[I_k]/E[U_k]``.

    Eq. 47 of the supplement (negated, as a loss); its gradient is eq. 59
    divided by ``-K'``. Absent classes are left out as in :class:`UOILoss`.

    Args:
        loss_weight: Factor of the loss.
        eps: Lower bound of the expected union.
        label_patch: Pool labels and prediction over ``f x f`` patches
            first, as in :class:`UOILoss`; 1: per pixel.
        min_class_pixels: Leave out classes with at most this label mass,
            as in :class:`UOILoss` (a deviation from the paper; 0: off).
        loss_name: Key in the loss dict (must start with ``loss_``).

    References:
        "Combining the Best of Graphical Models and ConvNets for Semantic
        Segmentation", eq. 1-5; supplement eq. 47, 59.
    """
    default_name = 'loss_iou'

    def per_class(self, inter: Tensor, union: Tensor) -> Tensor:
        return 1.0 - inter / union.clamp_min(self.eps)
