"""Build a model from a config and checkpoint (safely) and score single
images: ``init_model`` and ``score_image``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
from mmengine.config import Config

from ..utils import (check_checkpoint_fits, explain_unknown_types,
                     load_checkpoint_file, resolve_config_path,
                     safe_checkpoint_loading)
from .ood_scoring import OODScoring
from .segmentors import OODSegmentor


def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None,
               unsafe_load: bool = False):
    """mmseg's ``init_model`` with safe checkpoint loading.

    Runs ``mmseg.apis.init_model`` (no pretrained weights, ``train_cfg``
    dropped, ``model.cfg`` and ``dataset_meta`` set, eval mode) under
    :func:`~mmseg_ood.utils.safe_checkpoint_loading` (``weights_only=True``
    and the allow-list), so a Runner checkpoint loads
    under torch >= 2.6, where mmseg's own ``init_model`` fails with
    ``UnpicklingError ... HistoryBuffer``. The checkpoint must fit the model
    exactly (names and shapes, as in ``tools/ood_test.py``): mmseg would load
    a mismatch with only a logged warning.

    Args:
        config: Config file, ``mmseg_ood::<path>`` (a config shipped with
            the package) or a ``Config`` (modified in place by
            ``cfg_options``, as mmseg does).
        checkpoint: Checkpoint file; ``None`` leaves the weights
            initialised.
        device: Device of the model, e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options: Config overrides, as ``--cfg-options``.
        unsafe_load: Load with full pickle (``weights_only=False``). Only for
            checkpoints from a trusted source: unpickling can run any code.

    Returns:
        nn.Module: The segmentor in eval mode on ``device``, with ``cfg`` and
        (with a checkpoint) ``dataset_meta`` set as mmseg sets them.

    Raises:
        FileNotFoundError: The config or the checkpoint does not exist.
        UnsafeCheckpointError: The checkpoint needs a global outside the
            allow-list (see ``unsafe_load``).
        ValueError: The checkpoint does not fit the model; the message names
            both files and the mismatched parameters.
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
    from mmseg.apis import init_model as mmseg_init_model
    if isinstance(config, (str, Path)):
        config_name = str(config)
        config = resolve_config_path(config_name)
    elif isinstance(config, Config):
        config_name = config.filename or '<Config object>'
    else:
        raise TypeError('`config` must be a file name, mmseg_ood::<path> or '
                        f'a Config, got {type(config).__name__}')
    # read first, so that a missing or unsafe file fails before building
    ckpt = None if checkpoint is None else load_checkpoint_file(
        str(checkpoint), unsafe=unsafe_load)
    # mmseg builds, loads (dataset_meta as it sets it) under the same
    # safe loader; the fit check then turns its logged mismatch warnings
    # into an error
    with explain_unknown_types(), safe_checkpoint_loading(unsafe_load):
        model = mmseg_init_model(config, None if ckpt is None else
                                 str(checkpoint), device=device,
                                 cfg_options=cfg_options)
    if ckpt is not None:
        check_checkpoint_fits(model, ckpt, str(checkpoint), config_name)
        if isinstance(model, OODSegmentor):  # its calibration's weights?
            model.check_checkpoint(str(checkpoint))
    return model


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
        raise TypeError('score_image takes one image; loop over a list')
    with OODScoring(model, scorers, strict=strict):
        result = inference_model(model, img)
    scores = {
        name: s.detach().cpu().numpy().astype(np.float32)
        for name, s in result.ood_scores.items()
    }
    return (scores, result) if return_result else scores
