"""Build a model from a config and checkpoint (safely) and score single
images: ``init_model`` and ``score_image``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
from mmengine.config import Config

from ..errors import DamagedFileError, InvalidTypeError
from ..utils import (check_checkpoint_fits, check_device, checkpoint_meta,
                     checkpoint_state_dict, explain_unknown_types,
                     load_checkpoint_file, resolve_config_path,
                     safe_checkpoint_loading)
from .introspection import final_decode_head, unwrap_segmentor
from .ood_scoring import OODScoring
from .segmentors import OODSegmentor


def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None,
               unsafe_load: bool = False):
    """mmseg's ``init_model`` with safe checkpoint loading.

    Builds the model with ``mmseg.apis.init_model`` (no pretrained weights,
    ``train_cfg`` dropped, ``model.cfg`` set, eval mode) and loads the
    checkpoint itself, read once with :func:`~mmseg_ood.utils.
    load_checkpoint_file` (``weights_only=True`` and the allow-list), so a
    Runner checkpoint loads under torch >= 2.6, where mmseg's own
    ``init_model`` fails with ``UnpicklingError ... HistoryBuffer``. The
    checkpoint must fit the model exactly (names and shapes, as in
    ``tools/ood_test.py``): mmseg would load a mismatch with only a logged
    warning. A checkpoint without ``meta`` (a bare state dict, a model-zoo
    or converted file) loads too - mmseg's ``init_model`` fails on it with
    ``KeyError: 'meta'`` -; ``dataset_meta`` then comes from the config
    (:func:`model_dataset_meta`).

    Args:
        config: Config file, ``mmseg_ood::<path>`` (a config shipped with
            the package) or a ``Config`` (modified in place by
            ``cfg_options``, as mmseg does).
        checkpoint: Checkpoint file; ``None`` leaves the weights
            initialised.
        device: Device of the model, e.g. ``'cpu'`` or ``'cuda:0'``;
            checked first (:func:`~mmseg_ood.utils.check_device`).
        cfg_options: Config overrides, as ``--cfg-options``.
        unsafe_load: Load with full pickle (``weights_only=False``). Only for
            checkpoints from a trusted source: unpickling can run any code.

    Returns:
        nn.Module: The segmentor in eval mode on ``device``, with ``cfg`` and
        (with a checkpoint) ``dataset_meta`` set.

    Raises:
        InvalidValueError: ``device`` does not exist on this machine
            (``cuda:99``, CUDA not available); the checkpoint does not fit
            the model (the message names both files and the mismatched
            parameters).
        MissingInputError: The config or the checkpoint does not exist
            (a ``FileNotFoundError``).
        DamagedFileError: The checkpoint is no checkpoint (empty, text,
            truncated) or its ``meta`` has fields of the wrong type.
        UnsafeCheckpointError: The checkpoint needs a global outside the
            allow-list (see ``unsafe_load``).
        CalibrationMismatchError: The config builds an
            :class:`~mmseg_ood.models.OODSegmentor` whose calibration was
            made for another checkpoint (a ``ValueError``).

    Example:
        >>> from mmseg_ood.apis import init_model, score_image
        >>> model = init_model('mmseg_ood::synthetic/deeplabv3plus_r18-d8_'
        ...                    '1xb8-300it_synthetic-street-128x256.py',
        ...                    'work_dirs/demo/iter_300.pth')
        >>> maps = score_image(model, 'demo.png', ['msp', 'energy'])
    """
    from mmengine.runner import load_state_dict
    from mmseg.apis import init_model as mmseg_init_model
    if isinstance(config, (str, Path)):
        config_name = str(config)
        config = resolve_config_path(config_name)
    elif isinstance(config, Config):
        config_name = config.filename or '<Config object>'
    else:
        raise InvalidTypeError(
            '`config` must be a file name, mmseg_ood::<path> or '
            f'a Config, got {type(config).__name__}')
    device = str(check_device(device, '`device`'))
    # read first, so that a missing, damaged or unsafe file fails before
    # building; read once: the weights are loaded from this dict
    ckpt = None if checkpoint is None else load_checkpoint_file(
        str(checkpoint), unsafe=unsafe_load)
    # a model whose init_cfg names a checkpoint loads it safely too
    with explain_unknown_types(), safe_checkpoint_loading(unsafe_load):
        model = mmseg_init_model(config, None, device=device,
                                 cfg_options=cfg_options)
    if ckpt is not None:
        name = str(checkpoint)
        # mmseg would load a mismatch with a logged warning only
        check_checkpoint_fits(model, ckpt, name, config_name)
        # as mmengine's load_checkpoint does (module. prefix removed)
        load_state_dict(model, checkpoint_state_dict(ckpt, name),
                        strict=True)
        model.dataset_meta = model_dataset_meta(model, ckpt, name)
        if isinstance(model, OODSegmentor):  # its calibration's weights?
            model.check_checkpoint(name)
    return model


def model_dataset_meta(model, ckpt, checkpoint: str = 'the checkpoint'
                       ) -> dict:
    """``dataset_meta`` (``classes``, ``palette``) of a model loaded from
    ``ckpt``, as mmseg's ``init_model`` sets it, where there is one.

    In order: the checkpoint's ``meta['dataset_meta']`` (mmseg 1.x, kept
    whole); its ``meta['CLASSES']`` / ``'PALETTE'`` (mmseg 0.x); the
    ``metainfo`` of the config's test dataset, or its dataset class's
    ``METAINFO``, if it has as many classes as the model. Else
    ``classes`` and ``palette`` are ``None`` (the visualizer and
    :class:`~mmseg_ood.models.OODSegmentor` fill them in). mmseg's own
    fallback - the first dataset with as many classes, else Cityscapes -
    would name the classes of an unrelated dataset.

    Args:
        model: The built segmentor (``model.cfg`` set).
        ckpt: The loaded checkpoint.
        checkpoint: The file, as messages name it.

    Returns:
        dict: At least ``classes`` and ``palette``.

    Raises:
        DamagedFileError: ``meta['dataset_meta']`` is not a dict, or its
            ``classes`` not a list of names.
    """
    meta = checkpoint_meta(ckpt)
    where = f'checkpoint {checkpoint}'
    dataset_meta = meta.get('dataset_meta')
    if dataset_meta is not None and not isinstance(dataset_meta, dict):
        raise DamagedFileError(
            f"{where}: meta['dataset_meta'] must be a dict, got "
            f'{type(dataset_meta).__name__}')
    found = dataset_meta if dataset_meta and dataset_meta.get('classes') \
        else None
    if found is None and meta.get('CLASSES'):
        found = dict(classes=meta['CLASSES'], palette=meta.get('PALETTE'))
    if found is not None:
        classes = found.get('classes')
        if not isinstance(classes, (list, tuple)) or not all(
                isinstance(c, str) for c in classes):
            raise DamagedFileError(
                f'{where}: the class names in its meta must be a list of '
                f'strings, got {type(classes).__name__}')
        return dict(found, palette=found.get('palette'))
    return dict(config_dataset_meta(getattr(model, 'cfg', None),
                                    _num_classes(model)))


def config_dataset_meta(cfg, num_classes: Optional[int] = None) -> dict:
    """``classes`` and ``palette`` of the config's test dataset (its
    ``metainfo``, else its class's ``METAINFO``); both ``None`` when the
    config has no test dataset or, with ``num_classes``, its number of
    classes differs.

    Args:
        cfg: The model's config (an mmengine ``Config``); ``None`` or a
            config without ``test_dataloader`` gives ``None`` for both.
        num_classes: The model's number of classes, to reject a config
            whose dataset has another number; ``None`` skips the check.

    Returns:
        dict: ``dict(classes=tuple or None, palette=list of [r, g, b] or
        None)``.
    """
    from mmseg.registry import DATASETS
    none = dict(classes=None, palette=None)
    try:
        dataset = cfg.test_dataloader.dataset
    except AttributeError:  # no config, or no test dataloader
        return none
    metainfo = dataset.get('metainfo') or {}
    classes, palette = metainfo.get('classes'), metainfo.get('palette')
    if not classes and isinstance(dataset.get('type'), str):
        known = getattr(DATASETS.get(dataset['type']), 'METAINFO', None)
        known = known if isinstance(known, dict) else {}
        classes, palette = known.get('classes'), known.get('palette')
    if not classes or (num_classes is not None
                       and len(classes) != num_classes):
        return none
    return dict(classes=tuple(classes),
                palette=None if not palette else [list(c) for c in palette])


def _num_classes(model) -> Optional[int]:
    try:
        return int(final_decode_head(unwrap_segmentor(model)).num_classes)
    except (AttributeError, TypeError, ValueError):
        return None


def score_image(model, img: Union[str, np.ndarray], scorers,
                strict: bool = True, return_result: bool = False):
    """Per-pixel OOD scores of one image, at the image's size.

    Runs mmseg's ``inference_model`` (the config's test pipeline, whole or
    slide inference as configured) once, with every scorer attached.

    Args:
        model: A segmentor from :func:`init_model` (or mmseg's; it needs
            ``model.cfg`` for the test pipeline).
        img: Image file path or ``(H, W, 3)`` BGR array, as mmseg takes.
        scorers: Names, config dicts or scorer instances (see
            :class:`~mmseg_ood.models.OODScoring`).
        strict: Raise on scorers the model cannot support (else skip them).
        return_result: Also return mmseg's ``SegDataSample``.

    Returns:
        dict: scorer name -> ``np.ndarray`` ``(H, W)`` float32, higher = more
        OOD, aligned with ``pred_sem_seg``; with ``return_result``, a tuple
        ``(scores, data_sample)``.

    Example:
        >>> from mmseg_ood.apis import init_model, score_image
        >>> model = init_model(config, checkpoint, device='cpu')
        >>> maps = score_image(model, 'demo.png', ['msp', 'n_energy'])
    """
    from mmseg.apis import inference_model
    if isinstance(img, (list, tuple)):
        raise InvalidTypeError('score_image takes one image; loop over a list')
    with OODScoring(model, scorers, strict=strict):
        result = inference_model(model, img)
    scores = {
        name: s.detach().cpu().numpy().astype(np.float32)
        for name, s in result.ood_scores.items()
    }
    return (scores, result) if return_result else scores
