"""Norm-decoupled class scores shared by ``n_max_logit`` and ``n_energy``."""
from __future__ import annotations

from torch import Tensor

from ..errors import InvalidTypeError, InvalidValueError
from ..implicit_background import implicit_background_logits
from .base import (ScoreInputs, check_number, embedding_norm, linear_logits,
                   logits_without_bias)


def check_decoupling_args(eta, delta, use_bias) -> tuple:
    """Validate the norm-decoupling parameters of ``n_max_logit`` /
    ``n_energy``.

    Args:
        eta: Class-weight exponent (norm-decoupling thesis, eq. 4.22-4.23);
            any finite number.
        delta: How much of the embedding norm is kept (eq. 5.6-5.7); in
            ``[0, 1]``.
        use_bias: Whether the classifier bias stays in the class scores;
            must be a ``bool``.

    Returns:
        tuple: ``(eta, delta, use_bias)`` with the numbers as floats.

    Raises:
        TypeError: a number is not a number, or ``use_bias`` is not a bool.
        ValueError: ``eta`` is not finite or ``delta`` is outside [0, 1].
    """
    eta = check_number('eta', eta)
    delta = check_number('delta', delta, 0.0)
    if delta > 1.0:
        raise InvalidValueError(f'`delta` must be in [0, 1], got {delta}')
    if not isinstance(use_bias, bool):
        raise InvalidTypeError(f'`use_bias` must be a bool, got {use_bias!r}')
    return eta, delta, use_bias


def decoupled_logits(inputs: ScoreInputs, eta: float = 1.0,
                     delta: float = 0.0, use_bias: bool = False) -> Tensor:
    """``s'_c = w_c^(eta - 1) * s_c / ||z||^(1 - delta)``.

    ``s_c = W_c z`` (plus ``b_c`` if ``use_bias``), ``w_c = ||W_c||``.
    ``eta = 1, delta = 0`` is eq. 4.17 (``s / ||z||``); ``eta`` is the
    class-weight exponent of eq. 4.22-4.23 (``eta = 0`` divides each class
    score by its weight norm, i.e. unit-norm class weights); ``delta``
    reintroduces the norm, eq. 5.6-5.7 (``delta = 1`` gives back the raw
    scores, times the class-weight factor).

    The thesis drops the bias (sec. 4.1: "bias is negligible"); we drop it by
    default too, which makes ``s'`` invariant to scaling ``z`` when
    ``delta = 0``. With ``use_bias=True`` the model's logits are used as
    they are.

    Args:
        inputs: The captured forward pass; needs ``embeddings`` (and
            ``cls_weight`` when ``eta != 1``).
        eta: Class-weight exponent; ``1`` leaves the class scores
            unweighted.
        delta: Fraction of the embedding norm kept, in ``[0, 1]``; ``0``
            removes it entirely.
        use_bias: ``False`` (default): use ``W z``, as the thesis does;
            ``True``: use the model's logits ``W z + b``.

    Returns:
        Tensor: The decoupled class scores, float32. For IBE / SCrIBE heads
        the implicit background logit is recomputed from the decoupled
        foreground scores and put back at ``background_index``.

    Raises:
        ValueError: no ``embeddings``, or ``eta != 1`` without a matching
            ``cls_weight``.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """
    if inputs.embeddings is None:
        raise InvalidValueError('decoupled scores need `embeddings`')
    scores = linear_logits(inputs) if use_bias else logits_without_bias(
        inputs)
    scores = scores.float()
    if delta != 1.0:
        scores = scores / embedding_norm(inputs).float()**(1.0 - delta)
    if eta != 1.0:
        if inputs.cls_weight is None:
            raise InvalidValueError('`eta` != 1 needs the classifier weight '
                                    '(`cls_weight`)')
        if inputs.cls_weight.shape[0] != scores.shape[1]:
            raise InvalidValueError(
                f'`cls_weight` has {inputs.cls_weight.shape[0]} rows but the '
                f'logits have {scores.shape[1]} classes')
        w = inputs.cls_weight.float().norm(dim=1)
        scores = scores * inputs.per_class(w**(eta - 1.0))
    if inputs.head_kind in ('ibe', 'scribe'):
        scores = implicit_background_logits(scores, inputs.background_index)
    return scores
