"""Map a plain segmentor's weights onto an IBE / SCrIBE head, and back.

An :class:`~mmseg_ood.models.IBEHead` / :class:`~mmseg_ood.models.
SCrIBEHead` wraps the plain decode head as ``decode_head.head`` with
``k - 1`` outputs (the foreground classes); the background logit is not
learned but computed, ``v_BG = -logsumexp(v_FG)`` (IBE eq. 5). So a plain
checkpoint converts by

- moving every parameter and buffer of the final decode head under
  ``head.`` (``decode_head.conv_seg.weight`` ->
  ``decode_head.head.conv_seg.weight``; for cascade segmentors, the last
  head ``decode_head.<i>``), everything else (backbone, neck, auxiliary
  heads) copied as it is;
- keeping the ``k - 1`` foreground rows of ``conv_seg`` (weight and bias)
  and dropping the background row.

How the bias is handled, and what it means (``bias`` argument):

- ``'keep'`` (default): the foreground rows and biases are copied as they
  are, so the converted model's foreground logits equal the plain model's
  (tested). Its background logit changes from the plain model's ``s_BG``
  to ``-logsumexp(s_FG)``.
- ``'relative'``: the background row and bias are subtracted from each
  foreground one, ``w_j - w_BG``, ``b_j - b_BG``: the foreground logits
  become ``s_j - s_BG``, the plain model's logits relative to its
  background (softmax is unchanged by adding one value to every logit), so
  the plain decision "background where every ``s_j - s_BG < 0``" carries
  over up to the logsumexp of eq. 5 (the converted model predicts
  background where ``max_j (s_j - s_BG) < -logsumexp_j (s_j - s_BG)``).

Back to a plain head (``to='plain'``): the wrapped head's keys move up and
a background row is inserted in ``conv_seg``: zero weight and bias, so the
plain model's background logit is 0 where the IBE one was
``-logsumexp(v_FG)``: the foreground logits are kept, but the two models'
predictions differ where ``-logsumexp(v_FG)`` and 0 fall on different
sides of ``max v_FG``, i.e. where ``0 > max v_FG > -logsumexp(v_FG)``.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Dict, Tuple

import torch

from ...errors import InvalidValueError
from ...implicit_background import check_background_index

__all__ = ['to_implicit_background', 'to_plain', 'find_final_head',
           'CONVERSION_TARGETS', 'BIAS_MODES']

#: What a checkpoint can be converted to.
CONVERSION_TARGETS = ('ibe', 'scribe', 'plain')
#: How the foreground rows are taken (see the module docstring).
BIAS_MODES = ('keep', 'relative')


def find_final_head(state: Dict[str, torch.Tensor]) -> Tuple[str, bool]:
    """``(prefix, wrapped)`` of the final decode head's classifier:
    ``prefix`` is ``'decode_head'`` or, for cascades, ``'decode_head.<i>'``
    with the largest ``i``; ``wrapped`` whether it is an IBE / SCrIBE head
    (its classifier under ``<prefix>.head.conv_seg``).

    Args:
        state: A segmentor's state dict (parameter name -> tensor), e.g.
            a checkpoint's ``state_dict``.

    Returns:
        tuple: ``(prefix, wrapped)``, a str and a bool.

    Raises:
        ValueError: no ``decode_head...conv_seg.weight`` (a head without a
            1x1 classifier, e.g. MaskFormer, or not a segmentor's
            checkpoint), naming what the decode head holds.
    """
    found = []
    for key in state:
        m = re.fullmatch(r'(decode_head(?:\.(\d+))?)(\.head)?\.conv_seg\.'
                         r'weight', key)
        if m:
            found.append((int(m.group(2) or -1), m.group(1),
                          m.group(3) is not None))
    if not found:
        heads = sorted({k.split('.')[1] for k in state
                        if k.startswith('decode_head.')})
        raise InvalidValueError(
            'no decode_head ... conv_seg.weight in the checkpoint: IBE / '
            'SCrIBE wrap heads that end in a 1x1 classifier `conv_seg` '
            f'(the decode head holds: {heads[:12] or "nothing"})')
    _, prefix, wrapped = max(found)
    return prefix, wrapped


def _rows(state, prefix: str) -> Tuple[torch.Tensor, torch.Tensor]:
    w = state[f'{prefix}.conv_seg.weight']
    b = state.get(f'{prefix}.conv_seg.bias')
    return w, b


def to_implicit_background(state: Dict[str, torch.Tensor],
                           background_index: int = 0,
                           bias: str = 'keep'
                           ) -> 'OrderedDict[str, torch.Tensor]':
    """A plain segmentor's state dict as an IBE / SCrIBE one (both wrap the
    head the same way).

    Args:
        state: The plain model's state dict.
        background_index: The background row of ``conv_seg``, in
            ``[0, k)``.
        bias: ``'keep'`` or ``'relative'`` (module docstring).

    Returns:
        OrderedDict: The converted state dict; the final head's keys moved
        under ``<prefix>.head.``, its ``conv_seg`` with ``k - 1`` rows.

    Raises:
        ValueError: no ``conv_seg``, a head already wrapped, a bad
            ``background_index`` or ``bias``.
    """
    if bias not in BIAS_MODES:
        raise InvalidValueError(
            f'`bias` must be one of {BIAS_MODES}, got {bias!r}')
    prefix, wrapped = find_final_head(state)
    if wrapped:
        raise InvalidValueError(
            f'{prefix} is an IBE / SCrIBE head already '
            f'({prefix}.head.conv_seg); convert it --to plain '
            'first if you mean to re-wrap it')
    w, b = _rows(state, prefix)
    k = w.shape[0]
    if k < 2:
        raise InvalidValueError(
            f'{prefix}.conv_seg has {k} output; IBE needs the '
            'background and at least one foreground class')
    check_background_index(background_index, k)
    keep = [i for i in range(k) if i != background_index]
    if bias == 'relative':
        w = w - w[background_index:background_index + 1]
        if b is not None:
            b = b - b[background_index]
    out = OrderedDict()
    for key, value in state.items():
        if key.startswith(prefix + '.'):
            rest = key[len(prefix) + 1:]
            if rest == 'conv_seg.weight':
                value = w[keep].clone()
            elif rest == 'conv_seg.bias':
                value = b[keep].clone()
            out[f'{prefix}.head.{rest}'] = value
        else:
            out[key] = value
    return out


def to_plain(state: Dict[str, torch.Tensor], background_index: int = 0
             ) -> 'OrderedDict[str, torch.Tensor]':
    """An IBE / SCrIBE state dict as a plain head's (module docstring: the
    background row is zero).

    Args:
        state: The IBE / SCrIBE model's state dict.
        background_index: Where the zero background row is inserted into
            ``conv_seg``, in ``[0, k)`` for the ``k - 1`` foreground rows
            the state holds; the index the IBE / SCrIBE head used.

    Returns:
        OrderedDict: The plain state dict, ``conv_seg`` with ``k`` rows.

    Raises:
        ValueError: the head is not wrapped, or a bad ``background_index``.
    """
    prefix, wrapped = find_final_head(state)
    if not wrapped:
        raise InvalidValueError(f'{prefix} is a plain head (no {prefix}.head.'
                                'conv_seg): there is nothing to unwrap')
    inner = f'{prefix}.head'
    w, b = _rows(state, inner)
    check_background_index(background_index, w.shape[0] + 1)
    zero_w = w.new_zeros((1, ) + tuple(w.shape[1:]))
    w = torch.cat([w[:background_index], zero_w, w[background_index:]])
    if b is not None:
        b = torch.cat([b[:background_index], b.new_zeros(1),
                       b[background_index:]])
    out = OrderedDict()
    for key, value in state.items():
        if key.startswith(inner + '.'):
            rest = key[len(inner) + 1:]
            if rest == 'conv_seg.weight':
                value = w
            elif rest == 'conv_seg.bias':
                value = b
            out[f'{prefix}.{rest}'] = value
        else:
            out[key] = value
    return out
