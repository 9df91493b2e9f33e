"""``OODInferencer``: mmseg's inferencer with a calibrated "unknown" class.

:class:`OODInferencer` is mmseg's :class:`~mmseg.apis.MMSegInferencer`
(same inputs - a file, a list, a folder, arrays -, same pipeline, batching,
visualizer and ``vis/`` overlays) with three differences:

- the model is loaded with :func:`mmseg_ood.apis.init_model` (safe
  checkpoint loading with the allow-list, the checkpoint must fit the
  config) and wrapped in :class:`~mmseg_ood.models.OODSegmentor`, whose
  calibration is checked against the checkpoint file;
- the predictions carry the OOD decision: ``pred_sem_seg`` with
  ``ood_label`` where ``score >= threshold`` (or the score is NaN:
  fail-safe), the score map and the mask;
  overlays draw "unknown" in its own colour;
- ``out_dir`` gets, per input, the label map ``pred/<name>.png``, the mask
  ``mask/<name>.png`` (0 / 255) and the score map ``score/<name>.npy``
  (float32, ``(H, W)``), besides mmseg's overlay ``vis/<file name>``.
  ``<name>`` is the input file's name without extension, or the running
  number (``00000000``) for arrays.

Array inputs are BGR, as everywhere in mmseg and OpenCV; the overlay of an
array is drawn from its RGB conversion (mmseg draws arrays as if they were
RGB, which swaps red and blue in its overlays).
"""
from __future__ import annotations

import os.path as osp
from typing import List, Optional, Union

import cv2
import mmengine
import numpy as np
from mmengine.config import Config

from mmseg.apis import MMSegInferencer
from ..formats.threshold_file import (OODCalibration, check_ood_label,
                                      check_threshold)
from ..models import OODSegmentor
from ..models.inference import init_model
from ..utils import resolve_config_path

__all__ = ['OODInferencer', 'OODInputError', 'OODInputNotFoundError']


class OODInputError(ValueError):
    """An input of OOD inference the user must fix: a missing file, a file
    of unknown type, an image that does not decode, inputs whose outputs
    would overwrite each other. The message names the input."""


class OODInputNotFoundError(OODInputError, FileNotFoundError):
    """An input file or folder (or calibration file) does not exist (also a
    ``FileNotFoundError``)."""


class OODInferencer(MMSegInferencer):
    """Segment images and mark what the model does not know.

    Args:
        model: Config file, ``mmseg_ood::<path>`` or ``Config``: a plain
            model config (then ``calibration`` or ``scorer`` + ``threshold``
            is needed) or one whose model is an ``OODSegmentor`` already.
        weights: Checkpoint of the plain segmentor.
        calibration: Calibration file (or its directory) or
            :class:`~mmseg_ood.formats.threshold_file.OODCalibration`.
        scorer / threshold: Instead of a calibration: a scorer name or
            config dict and its threshold (not tied to any checkpoint).
            ``scorer`` alone with a calibration: must be the calibration's
            scorer (else ``CalibrationMismatchError``).
        ood_label: Label of OOD pixels (``None``: the calibration's, else
            ``num_classes``).
        classes / palette / dataset_name: As in ``MMSegInferencer``; they
            set the visualizer's defaults, while the drawing uses the
            model's ``dataset_meta`` (with "unknown").
        device: ``'cpu'``, ``'cuda:0'``, ...; ``None`` picks one.
        scope: The registry scope (``'mmseg'``).
        unsafe_load: Load the checkpoint with full pickle (trusted files
            only).
        show_progress: Show mmengine's rich progress bar over the batches.

    Raises:
        CalibrationMismatchError: The calibration was made for another
            checkpoint, number of classes or scorer (names both).
        ValueError: A calibration or threshold is given with a config whose
            model is an ``OODSegmentor`` already, or neither is given; an
            ``ood_label`` out of [0, 255]; a non-finite threshold.

    Example:
        >>> inferencer = OODInferencer(config, ckpt,
        ...                            calibration='calib/calibration.json')
        >>> out = inferencer('street.png', out_dir='out')
        >>> out['predictions']['ood_mask'].mean()   # fraction "unknown"
    """

    postprocess_kwargs: set = {'pred_out_dir', 'return_datasample',
                               'mask_out_dir', 'score_out_dir'}

    def __init__(self,
                 model: Union[str, Config],
                 weights: Optional[str] = None,
                 calibration: Union[None, str, OODCalibration] = None,
                 scorer: Union[None, str, dict] = None,
                 threshold: Optional[float] = None,
                 ood_label: Optional[int] = None,
                 classes: Optional[list] = None,
                 palette: Optional[list] = None,
                 dataset_name: Optional[str] = None,
                 device: Optional[str] = None,
                 scope: Optional[str] = 'mmseg',
                 unsafe_load: bool = False,
                 show_progress: bool = True) -> None:
        # checked before anything is loaded
        check_ood_label(ood_label, '`ood_label`')
        if threshold is not None:
            check_threshold(threshold, '`threshold`')
        self._ood_args = dict(calibration=calibration, scorer=scorer,
                              threshold=threshold, ood_label=ood_label)
        self._unsafe_load = unsafe_load
        if isinstance(model, str):
            # BaseInferencer takes a string that is no file for a
            # model-zoo name; resolve mmseg_ood::<path> first
            model = resolve_config_path(model)
            if not osp.isfile(model):
                raise FileNotFoundError(f'config file {model} not found')
        super().__init__(model, weights, classes=classes, palette=palette,
                         dataset_name=dataset_name, device=device,
                         scope=scope)
        self.show_progress = show_progress

    def _init_model(self, cfg, weights, device='cpu'):
        """Build and load through :func:`mmseg_ood.apis.init_model` (safe
        loading, fit check) and wrap in an ``OODSegmentor``."""
        if not isinstance(cfg, Config):
            cfg = Config(cfg)
        model = init_model(cfg, weights, device=device,
                           unsafe_load=self._unsafe_load)
        # as MMSegInferencer keeps it: the visualizer takes these two only
        # (a Runner checkpoint's meta also holds label_map etc.)
        meta = getattr(model, 'dataset_meta', None) or {}
        if isinstance(model, OODSegmentor):
            meta = getattr(model.segmentor, 'dataset_meta', None) or {}
        model.dataset_meta = dict(classes=meta.get('classes'),
                                  palette=meta.get('palette'))
        given = {k: v for k, v in self._ood_args.items() if v is not None}
        if isinstance(model, OODSegmentor):
            if set(given) - {'ood_label', 'scorer'} or (
                    'scorer' in given and model.calibration is None):
                raise ValueError(
                    f'config {cfg.filename} builds an OODSegmentor with its '
                    f'own calibration; do not pass {sorted(given)} too')
            if 'scorer' in given:  # may name the calibrated one
                model.calibration.check_matches(scorer=given['scorer'])
            if 'ood_label' in given:
                model.ood_label = check_ood_label(given['ood_label'],
                                                  '`ood_label`')
            return model
        return OODSegmentor.wrap(model, checkpoint=weights, **given)

    @property
    def ood_segmentor(self) -> OODSegmentor:
        """The wrapped model."""
        return self.model

    def __call__(self,
                 inputs,
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 return_vis: bool = False,
                 show: bool = False,
                 wait_time: int = 0,
                 out_dir: str = '',
                 img_out_dir: str = 'vis',
                 pred_out_dir: str = 'pred',
                 mask_out_dir: str = 'mask',
                 score_out_dir: str = 'score',
                 **kwargs) -> dict:
        """Segment ``inputs`` and decide OOD per pixel.

        Args:
            inputs: An image file, an ``(H, W, 3)`` BGR array, a folder
                (its files) or a list of those.
            return_datasamples: Return the ``SegDataSample``\\ s (with
                ``pred_sem_seg``, ``ood_score``, ``ood_mask``,
                ``ood_scores``, ``seg_logits``) instead of arrays.
            batch_size: Images per forward pass.
            return_vis: Also return the overlays (RGB arrays).
            show: Show each overlay in a window.
            wait_time: Seconds each shown overlay stays.
            out_dir: Write outputs under this folder (``''``: write
                nothing).
            img_out_dir / pred_out_dir / mask_out_dir / score_out_dir:
                Subfolders of ``out_dir`` for overlays, label maps
                (``ood_label`` included), masks (0 / 255 PNG) and score
                maps (float32 ``.npy``).
            **kwargs: ``opacity``, ``with_labels`` (visualizer).

        Returns:
            dict: ``predictions``: per input a dict with ``sem_seg``
            (``(H, W)`` int64), ``ood_mask`` (``(H, W)`` bool) and
            ``ood_score`` (``(H, W)`` float32); ``visualization``: the
            overlays (with ``return_vis``). One input: the item itself,
            not a list. With ``return_datasamples``: the data samples.

        Raises:
            OODInputNotFoundError: An input file or folder does not exist
                (a ``FileNotFoundError``).
            OODInputError: An input file does not decode as an image
                (names it; a ``ValueError``). Other errors of the pipeline
                propagate unchanged.
        """
        def sub(name):
            return osp.join(out_dir, name) if out_dir != '' else ''

        return super(MMSegInferencer, self).__call__(
            inputs=inputs, return_datasamples=return_datasamples,
            batch_size=batch_size, show=show, wait_time=wait_time,
            img_out_dir=sub(img_out_dir), pred_out_dir=sub(pred_out_dir),
            mask_out_dir=sub(mask_out_dir),
            score_out_dir=sub(score_out_dir), return_vis=return_vis,
            **kwargs)

    def _inputs_to_list(self, inputs) -> list:
        # a missing path would otherwise reach the pipeline as a "file"
        for item in inputs if isinstance(inputs, (list, tuple)) else \
                [inputs]:
            if isinstance(item, str) and not osp.exists(item):
                raise OODInputNotFoundError(f'input {item} not found')
        return super()._inputs_to_list(inputs)

    def _load(self, item):
        """The test pipeline on one input. If it fails on a file that does
        not decode as an image, :class:`OODInputError` names the file; any
        other failure (a config error, a transform's bug) propagates
        unchanged."""
        try:
            return self.pipeline(item)
        except Exception as e:
            if not isinstance(item, str) or _decodes(item):
                raise
            raise OODInputError(f'cannot read image {item}: '
                                f'{type(e).__name__}: {e}') from e

    def preprocess(self, inputs, batch_size: int = 1, **kwargs):
        chunked = self._get_chunk_data(map(self._load, inputs), batch_size)
        yield from map(self.collate_fn, chunked)

    def visualize(self, inputs: list, preds: list, **kwargs):
        # arrays are BGR (as the pipeline reads them); mmseg would draw
        # them as RGB
        inputs = [x[..., ::-1] if isinstance(x, np.ndarray) else x
                  for x in inputs]
        return super().visualize(inputs, preds, **kwargs)

    def postprocess(self,
                    preds: list,
                    visualization: Optional[List[np.ndarray]],
                    return_datasample: bool = False,
                    pred_out_dir: str = '',
                    mask_out_dir: str = '',
                    score_out_dir: str = '') -> Union[dict, list]:
        """Write the label maps, masks and score maps; pack the results.

        Returns:
            See :meth:`__call__`.
        """
        results = dict(predictions=[], visualization=[])
        for i, pred in enumerate(preds):
            path = pred.metainfo.get('img_path')
            name = osp.splitext(osp.basename(path))[0] if path else \
                str(self.num_pred_imgs).zfill(8)
            out = dict(sem_seg=pred.pred_sem_seg.data[0].cpu().numpy(),
                       ood_mask=pred.ood_mask.data[0].cpu().numpy(),
                       ood_score=pred.ood_score.data[0].cpu().numpy())
            if pred_out_dir != '':
                mmengine.mkdir_or_exist(pred_out_dir)
                cv2.imwrite(osp.join(pred_out_dir, f'{name}.png'),
                            out['sem_seg'].astype(np.uint8))
            if mask_out_dir != '':
                mmengine.mkdir_or_exist(mask_out_dir)
                cv2.imwrite(osp.join(mask_out_dir, f'{name}.png'),
                            out['ood_mask'].astype(np.uint8) * 255)
            if score_out_dir != '':
                mmengine.mkdir_or_exist(score_out_dir)
                np.save(osp.join(score_out_dir, f'{name}.npy'),
                        out['ood_score'].astype(np.float32, copy=False))
            results['predictions'].append(out)
            if visualization is not None:
                results['visualization'].append(visualization[i])
            self.num_pred_imgs += 1
        if return_datasample:
            return preds[0] if len(preds) == 1 else preds
        if len(results['predictions']) == 1:
            results['predictions'] = results['predictions'][0]
            if visualization is not None:
                results['visualization'] = results['visualization'][0]
        return results


def _decodes(path: str) -> bool:
    """Whether the file decodes as an image (by OpenCV, mmcv's default
    backend, or Pillow, its other common one)."""
    try:
        if cv2.imread(path, cv2.IMREAD_UNCHANGED) is not None:
            return True
    except cv2.error:
        pass
    try:
        from PIL import Image
        with Image.open(path) as img:
            img.load()
        return True
    except Exception:  # any failure to decode is "does not decode"
        return False
