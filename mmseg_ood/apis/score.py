"""Score single images with a model: ``score_image``."""
from __future__ import annotations

from typing import Union

import numpy as np

from ..models import OODScoring


def score_image(model, img: Union[str, np.ndarray], scorers,
                strict: bool = True, return_result: bool = False):
    """Per-pixel OOD scores of one image, at the image's size.

    Runs mmseg's ``inference_model`` (the config's test pipeline, whole or
    slide inference as configured) once, with every scorer attached.

    Args:
        model: A segmentor from ``mmseg.apis.init_model`` (it needs
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
        >>> from mmseg.apis import init_model
        >>> model = init_model(cfg, checkpoint, device='cpu')
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
