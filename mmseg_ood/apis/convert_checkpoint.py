"""Convert a checkpoint between a plain head and IBE / SCrIBE:
``tools/convert_checkpoint.py``.

The mapping is :mod:`mmseg_ood.models.heads.checkpoint_conversion`; this
reads the source with the safe loader, writes the converted weights with
the source's ``meta`` (and a record of the conversion), and, given the
target's config, checks that the checkpoint's class names (if it records
any) are the config's and that the result loads into it with no missing,
unexpected or mis-shaped keys.

The output is checked before any work (not the source or the config by any
name, symlinks and hard links included; not a folder; in a folder that
exists) and written atomically: an interrupted or failed conversion leaves
no partial checkpoint and a previous file under that name as it was.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional

import torch

from ..errors import InvalidValueError, UserError
from ..models.heads.checkpoint_conversion import (BIAS_MODES,
                                                  CONVERSION_TARGETS,
                                                  find_final_head,
                                                  to_implicit_background,
                                                  to_plain)
from ..utils import (check_checkpoint_fits, checkpoint_meta,
                     checkpoint_state_dict, file_sha256, load_checkpoint_file,
                     load_config, resolve_config_path, state_dict_sha256)
from ..utils.files import atomic_output, check_output_path
from ..version import __version__

__all__ = ['convert_checkpoint', 'checkpoint_classes', 'config_classes']


def checkpoint_classes(ckpt) -> Optional[list]:
    """The class names a loaded checkpoint records (``meta.dataset_meta.
    classes``, or mmseg 0.x's ``meta.CLASSES``), or ``None``.

    Args:
        ckpt: A loaded checkpoint, the dict ``torch.load`` returns (its
            ``meta`` is read; a bare state dict has none, so ``None``).
    """
    meta = checkpoint_meta(ckpt)
    dataset_meta = meta.get('dataset_meta')
    classes = dataset_meta.get('classes') if isinstance(dataset_meta, dict) \
        else None
    if classes is None:
        classes = meta.get('CLASSES')
    return list(classes) if isinstance(classes, (list, tuple)) else None


def _dataset_classes(dataset) -> Optional[list]:
    """The classes of a dataset config: its ``metainfo``, else its class's
    ``METAINFO`` (through wrappers such as ``RepeatDataset``)."""
    if not isinstance(dataset, dict):
        return None
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None and isinstance(dataset.get('dataset'), dict):
        return _dataset_classes(dataset['dataset'])
    if classes is None:
        import mmseg.datasets  # noqa: F401  (registers mmseg's datasets)
        from mmseg.registry import DATASETS
        cls = DATASETS.get(dataset.get('type')) \
            if isinstance(dataset.get('type'), str) else dataset.get('type')
        classes = getattr(cls, 'METAINFO', {}).get('classes')
    return list(classes) if isinstance(classes, (list, tuple)) else None


def config_classes(cfg) -> Optional[list]:
    """The class names of a config's datasets (the training set's, else
    the validation or test set's), or ``None`` if none names them.

    Args:
        cfg: A loaded config (``mmengine.Config`` or a dict); each
            dataset's ``metainfo.classes`` is read, else the ``METAINFO``
            of its registered class (through wrappers such as
            ``RepeatDataset``).
    """
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset')
        classes = _dataset_classes(dataset)
        if classes:
            return classes
    return None


def _check_classes(src: str, ckpt, config: str, cfg_options) -> None:
    """Refuse a target config whose dataset classes differ from those the
    checkpoint records (nothing to compare if either names none)."""
    theirs = checkpoint_classes(ckpt)
    if not theirs:
        return
    ours = config_classes(load_config(config, cfg_options))
    if not ours or ours == theirs:
        return
    if len(ours) != len(theirs):
        what = f'{len(theirs)} classes, the config {len(ours)}'
    else:
        i = next(i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b)
        what = f'class {i} is {theirs[i]!r}, in the config {ours[i]!r}'
    raise InvalidValueError(
        f'checkpoint {src} was trained on other classes than config '
        f'{config} names: {what} (checkpoint: {theirs}; config: {ours}). '
        'Give the config of the same dataset, or pass --no-class-check if '
        'the names differ only in spelling')


def _input_files(src: str, config: Optional[str]) -> list:
    if config is None:
        return [src]
    try:
        config = resolve_config_path(config)
    except UserError:  # named when the config is read
        pass
    return [src, config]


def convert_checkpoint(src: str, to: str, out: str,
                       background_index: int = 0, bias: str = 'keep',
                       config: Optional[str] = None,
                       cfg_options: Optional[dict] = None,
                       unsafe_load: bool = False,
                       check_classes: bool = True) -> dict:
    """Convert ``src`` to ``to`` (``'ibe'``, ``'scribe'`` or ``'plain'``)
    and write ``out``.

    Only the weights and ``meta`` are written: the optimizer state and the
    message hub of a Runner checkpoint belong to the source's parameter
    shapes and schedule (fine-tune with ``load_from``, not ``resume``).

    Args:
        src: The source checkpoint.
        to: The target head.
        out: The converted checkpoint. Checked before any work: not
            ``src`` or ``config`` by any name (symlinks and hard links
            included), not a folder, in a folder that exists; written
            atomically.
        background_index: The background class (VOC, the synthetic objects:
            0).
        bias: ``'keep'`` or ``'relative'`` (see
            :mod:`~mmseg_ood.models.heads.checkpoint_conversion`; plain to
            IBE / SCrIBE only).
        config: The target's config: the result is checked to load into
            the model it builds (names and shapes), else an error naming
            both files; and the checkpoint's class names (if its ``meta``
            records them) must be the config's dataset classes.
        cfg_options / unsafe_load: As in the other tools.
        check_classes: Compare the class names (with ``config``).

    Returns:
        dict: ``out``, ``head`` (the converted head's prefix), ``to``,
        ``bias``, ``background_index``, ``parameters`` (tensors written),
        ``checked`` (the config, or ``None``).

    Raises:
        InvalidValueError: a bad ``to`` / ``bias``, no ``conv_seg``, a head
            that is already (or is not) wrapped, a bad
            ``background_index``, class names that differ from the
            config's, or a result that does not fit ``config``.
        OutputPathError: ``out`` is ``src`` or ``config`` (by any name), a
            folder, or in a folder that does not exist; nothing is read.
        MissingInputError / DamagedFileError: ``src`` is missing or not a
            checkpoint.
    """
    if to not in CONVERSION_TARGETS:
        raise InvalidValueError(
            f'--to must be one of {CONVERSION_TARGETS}, got '
            f'{to!r}')
    if bias not in BIAS_MODES:
        raise InvalidValueError(
            f'--bias must be one of {BIAS_MODES}, got {bias!r}')
    if to == 'plain' and bias != 'keep':
        raise InvalidValueError(
            "--bias applies to --to ibe / scribe; --to plain "
            'inserts a zero background row')
    inputs = _input_files(src, config)
    check_output_path(out, inputs, what='--out')
    ckpt = load_checkpoint_file(src, unsafe=unsafe_load)
    state = checkpoint_state_dict(ckpt, src)
    if config is not None and check_classes:
        _check_classes(src, ckpt, config, cfg_options)
    try:
        head, _ = find_final_head(state)
        converted = to_plain(state, background_index) if to == 'plain' \
            else to_implicit_background(state, background_index, bias)
    except ValueError as e:
        raise InvalidValueError(f'{src}: {e}') from None
    meta = dict(checkpoint_meta(ckpt))
    meta['mmseg_ood_conversion'] = dict(
        source=osp.abspath(src), source_sha256=file_sha256(src),
        source_state_dict_sha256=state_dict_sha256(state, src), to=to,
        background_index=background_index, bias=bias,
        package_version=__version__)
    result = dict(meta=meta, state_dict=converted)
    checked = None
    if config is not None:
        from ..models.inference import init_model
        model = init_model(config, None, cfg_options=cfg_options)
        check_checkpoint_fits(model, result, out, config)
        checked = config
    with atomic_output(out, inputs, what='--out') as tmp:
        torch.save(result, tmp)
    return dict(out=out, head=head, to=to, bias=bias,
                background_index=background_index,
                parameters=len(converted), checked=checked)
