"""Convert a checkpoint between a plain head and IBE / SCrIBE:
``tools/convert_checkpoint.py``.

The mapping is :mod:`mmseg_ood.models.heads.checkpoint_conversion`; this
reads the source with the safe loader, writes the converted weights with
the source's ``meta`` (and a record of the conversion), and, given the
target's config, checks that the result loads into it with no missing,
unexpected or mis-shaped keys.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional

import torch

from ..models.heads.checkpoint_conversion import (BIAS_MODES,
                                                  CONVERSION_TARGETS,
                                                  find_final_head,
                                                  to_implicit_background,
                                                  to_plain)
from ..utils import (check_checkpoint_fits, checkpoint_state_dict, file_sha256,
                     load_checkpoint_file)
from ..version import __version__

__all__ = ['convert_checkpoint']


def convert_checkpoint(src: str, to: str, out: str,
                       background_index: int = 0, bias: str = 'keep',
                       config: Optional[str] = None,
                       cfg_options: Optional[dict] = None,
                       unsafe_load: bool = False) -> dict:
    """Convert ``src`` to ``to`` (``'ibe'``, ``'scribe'`` or ``'plain'``)
    and write ``out``.

    Only the weights and ``meta`` are written: the optimizer state and the
    message hub of a Runner checkpoint belong to the source's parameter
    shapes and schedule (fine-tune with ``load_from``, not ``resume``).

    Args:
        src: The source checkpoint.
        to: The target head.
        out: The converted checkpoint (directories created).
        background_index: The background class (VOC, the synthetic objects:
            0).
        bias: ``'keep'`` or ``'relative'`` (see
            :mod:`~mmseg_ood.models.heads.checkpoint_conversion`; plain to
            IBE / SCrIBE only).
        config: The target's config: the result is checked to load into
            the model it builds (names and shapes), else an error naming
            both files.
        cfg_options / unsafe_load: As in the other tools.

    Returns:
        dict: ``out``, ``head`` (the converted head's prefix), ``to``,
        ``bias``, ``background_index``, ``parameters`` (tensors written),
        ``checked`` (the config, or ``None``).

    Raises:
        ValueError: a bad ``to`` / ``bias``, no ``conv_seg``, a head that is
            already (or is not) wrapped, a bad ``background_index``, or a
            result that does not fit ``config``.
    """
    if to not in CONVERSION_TARGETS:
        raise ValueError(f'--to must be one of {CONVERSION_TARGETS}, got '
                         f'{to!r}')
    if bias not in BIAS_MODES:
        raise ValueError(f'--bias must be one of {BIAS_MODES}, got {bias!r}')
    if to == 'plain' and bias != 'keep':
        raise ValueError("--bias applies to --to ibe / scribe; --to plain "
                         'inserts a zero background row')
    if osp.abspath(src) == osp.abspath(out):
        raise ValueError(f'--out must differ from the source ({src})')
    ckpt = load_checkpoint_file(src, unsafe=unsafe_load)
    state = checkpoint_state_dict(ckpt)
    try:
        head, _ = find_final_head(state)
        converted = to_plain(state, background_index) if to == 'plain' \
            else to_implicit_background(state, background_index, bias)
    except ValueError as e:
        raise ValueError(f'{src}: {e}') from None
    meta = dict(ckpt.get('meta') or {}) if isinstance(ckpt, dict) else {}
    meta['mmseg_ood_conversion'] = dict(
        source=osp.abspath(src), source_sha256=file_sha256(src), to=to,
        background_index=background_index, bias=bias,
        package_version=__version__)
    result = dict(meta=meta, state_dict=converted)
    checked = None
    if config is not None:
        from ..models.inference import init_model
        model = init_model(config, None, cfg_options=cfg_options)
        check_checkpoint_fits(model, result, out, config)
        checked = config
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save(result, out)
    return dict(out=out, head=head, to=to, bias=bias,
                background_index=background_index,
                parameters=len(converted), checked=checked)
