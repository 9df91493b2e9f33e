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
  overlays draw "unknown" in its own colour, and name the classes in a
  legend beside the image (:func:`draw_legend`) instead of mmseg's labels
  over it, which overlap each other and hide the segments;
- ``out_dir`` gets, per input, the label map ``pred/<name>.png``, the mask
  ``mask/<name>.png`` (0 / 255) and the score map ``score/<name>.npy``
  (float32, ``(H, W)``), besides mmseg's overlay ``vis/<file name>``.
  ``<name>`` is the input file's name without extension, or the running
  number (``00000000``) for arrays.

Array inputs are BGR, as everywhere in mmseg and OpenCV; the overlay of an
array is drawn from its RGB conversion (mmseg draws arrays as if they were
RGB, which swaps red and blue in its overlays). The overlay of an array
(a video frame) keeps the array's size, without the legend, unless
``legend=True``. A grayscale ``(H, W)`` /
``(H, W, 1)`` or BGRA ``(H, W, 4)`` uint8 array is converted to BGR; other
shapes and dtypes are refused by name. Image files are decoded as mmseg
decodes them (grayscale, 16-bit and RGBA files as 8-bit BGR). Any size
works, a single pixel included.

Every file is written atomically through :func:`~mmseg_ood.utils.files.
write_with` (a temporary file in the same folder, then ``os.replace``): a
writer that fails (``cv2.imwrite`` returning ``False``, a full disk) is an
error, never a missing file behind a success. Before any work, each call
checks that no output would be one of its inputs (by path or through a
link) and that no two inputs share an output (:func:`check_outputs_apart`).
"""
from __future__ import annotations

import functools
import os
import os.path as osp
from typing import Dict, Iterable, List, Optional, Sequence, Union

import cv2
import numpy as np
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.apis import MMSegInferencer
from mmseg.structures import SegDataSample

from ..errors import (InvalidTypeError, InvalidValueError, MissingInputError,
                      OutputPathError)
from ..formats.threshold_file import (OODCalibration, check_ood_label,
                                      check_threshold)
from ..models import OODSegmentor
from ..models.inference import init_model
from ..utils import check_device, resolve_config_path
from ..utils.files import check_output_dir, file_key, write_with

__all__ = ['OODInferencer', 'OODInputError', 'OODInputNotFoundError',
           'check_outputs_apart', 'draw_legend', 'output_names']


class OODInputError(InvalidValueError):
    """An input of OOD inference the user must fix: a missing file, a file
    of unknown type, an image that does not decode, inputs whose outputs
    would overwrite each other. The message names the input."""


class OODInputNotFoundError(OODInputError, MissingInputError):
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
            ``ood_label`` out of [0, 255]; a non-finite threshold; a
            ``device`` this machine does not have (all
            :class:`~mmseg_ood.errors.InvalidValueError`).

    Example:
        >>> inferencer = OODInferencer(config, ckpt,
        ...                            calibration='calib/calibration.json')
        >>> out = inferencer('street.png', out_dir='out')
        >>> out['predictions']['ood_mask'].mean()   # fraction "unknown"
    """

    postprocess_kwargs: set = {'pred_out_dir', 'return_datasample',
                               'mask_out_dir', 'score_out_dir'}
    visualize_kwargs: set = MMSegInferencer.visualize_kwargs | {'legend'}

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
        if device is not None:
            device = str(check_device(device, '`device`'))
        self._ood_args = dict(calibration=calibration, scorer=scorer,
                              threshold=threshold, ood_label=ood_label)
        self._unsafe_load = unsafe_load
        if isinstance(model, str):
            # BaseInferencer takes a string that is no file for a
            # model-zoo name; resolve mmseg_ood::<path> first
            model = resolve_config_path(model)
            if not osp.isfile(model):
                raise MissingInputError(f'config file {model} not found')
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
                raise InvalidValueError(
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
            **kwargs: ``opacity`` (of the class colours over the image);
                ``with_labels`` (default ``True``: name the classes shown
                in a legend beside the image, :func:`draw_legend`);
                ``legend`` (``None``: the legend for image files, not for
                arrays, whose overlay keeps the array's size, e.g. for a
                video; ``True`` / ``False``: for every input / none).

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
                (names it; a ``ValueError``); an array that is no image
                (its shape or dtype). Other errors of the pipeline
                propagate unchanged.
            OutputPathError: ``out_dir`` or one of its subfolders is a
                file; an output would be one of the inputs; two inputs
                would write the same output (checked before any work).
            OSError: Writing an output failed (nothing is left under its
                name).
        """
        inputs = self._inputs_to_list(inputs)
        dirs = dict(img=img_out_dir, pred=pred_out_dir, mask=mask_out_dir,
                    score=score_out_dir)
        if out_dir != '':
            check_output_dir(out_dir, '`out_dir`', inputs=[
                x for x in inputs if isinstance(x, str)])
            planned = {}
            for i, item in enumerate(inputs):
                source = item if isinstance(item, str) else \
                    f'array input #{i}'
                names = output_names(item, self.num_pred_imgs + i)
                for key, folder in dirs.items():
                    planned.setdefault(osp.join(out_dir, folder, names[key]),
                                       []).append(source)
            check_outputs_apart(planned, [x for x in inputs
                                          if isinstance(x, str)])

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
        """A flat list of files and BGR arrays: folders expanded (their
        files, sorted), missing paths and arrays that are no image refused
        by name, grayscale and BGRA arrays converted to BGR."""
        items = list(inputs) if isinstance(inputs, (list, tuple)) else \
            [inputs]
        out = []
        for i, item in enumerate(items):
            if isinstance(item, np.ndarray):
                out.append(_as_bgr(item, f'array input #{i}'))
            elif isinstance(item, (str, os.PathLike)):
                item = os.fspath(item)
                if not osp.exists(item):
                    raise OODInputNotFoundError(f'input {item} not found')
                if osp.isdir(item):
                    files = [osp.join(item, n) for n in sorted(os.listdir(
                        item)) if osp.isfile(osp.join(item, n))]
                    if not files:
                        raise OODInputError(f'folder {item} holds no files')
                    out += files
                else:
                    out.append(item)
            else:
                raise InvalidTypeError(
                    'inputs must be image files, folders or (H, W, 3) BGR '
                    f'arrays, got {type(item).__name__}')
        return out

    def _load(self, item):
        """The test pipeline on one input. If it fails on a file that does
        not decode as an image, or in a resize that shrinks a thin image
        (1 x 1000) to no pixel, :class:`OODInputError` names the input;
        any other failure (a config error, a transform's bug) propagates
        unchanged."""
        try:
            return self.pipeline(item)
        except Exception as e:
            if isinstance(item, str) and not _decodes(item):
                raise OODInputError(f'cannot read image {item}: '
                                    f'{type(e).__name__}: {e}') from e
            if isinstance(e, cv2.error) and 'resize' in str(e):
                shape = cv2.imread(item).shape if isinstance(item, str) \
                    else item.shape
                name = item if isinstance(item, str) else 'array input'
                raise OODInputError(
                    f'image {name} of {shape[0]} x {shape[1]} pixels '
                    "cannot be resized by the config's test pipeline: "
                    'its short side would shrink to 0 pixels at the '
                    'Resize (keep_ratio); crop or pad it to a less '
                    'extreme aspect ratio') from e
            raise

    def preprocess(self, inputs, batch_size: int = 1, **kwargs):
        chunked = self._get_chunk_data(map(self._load, inputs), batch_size)
        yield from map(self.collate_fn, chunked)

    def visualize(self,
                  inputs: list,
                  preds: list,
                  return_vis: bool = False,
                  show: bool = False,
                  wait_time: int = 0,
                  img_out_dir: str = '',
                  opacity: float = 0.8,
                  with_labels: Optional[bool] = True,
                  legend: Optional[bool] = None) -> Optional[list]:
        """mmseg's overlays (RGB arrays), with the classes shown named in a
        legend beside the image (:func:`draw_legend`), each written to
        ``img_out_dir`` atomically (:func:`~mmseg_ood.utils.files.
        write_with`).

        Args:
            inputs: The inputs (files and BGR arrays).
            preds: Their data samples.
            return_vis: Return the overlays.
            show: Show each overlay in a window.
            wait_time: Seconds each shown overlay stays.
            img_out_dir: Folder of the overlays (``''``: none written).
            opacity: Opacity of the class colours over the image.
            with_labels: Name the classes (in the legend; never over the
                image, where mmseg's labels overlap each other).
            legend: Draw the legend: ``None`` for image files only (the
                overlay of an array, e.g. a video frame, keeps its size),
                ``True`` for every input, ``False`` for none.

        Returns:
            list or None: The overlays, ``(H, W, 3)`` RGB, or
            ``(H', W + legend width, 3)`` with the legend (``H' >= H``:
            a legend taller than the image extends it, white below); or
            ``None`` without ``return_vis``.
        """
        if not show and img_out_dir == '' and not return_vis:
            return None
        first = self.num_visualized_imgs
        # arrays are BGR (as the pipeline reads them); mmseg would draw
        # them as RGB
        rgb = [x[..., ::-1] if isinstance(x, np.ndarray) else x
               for x in inputs]
        # the label maps as numpy: mmseg's _draw_sem_seg indexes the image
        # with ``sem_seg[0] == label``, and a one-pixel torch bool tensor
        # is taken there as the integer index 0 or 1 (IndexError on a 1x1
        # image)
        maps = [p.pred_sem_seg.data.cpu().numpy() for p in preds]
        drawn = [SegDataSample(pred_sem_seg=PixelData(data=m)) for m in maps]
        # mmseg's labels go over the image, one per segment, and overlap:
        # the classes are named in a legend beside it instead
        overlays = super().visualize(rgb, drawn, return_vis=True, show=False,
                                     wait_time=wait_time, img_out_dir='',
                                     opacity=opacity, with_labels=False)
        meta = self.visualizer.dataset_meta or {}
        for i, (item, label_map) in enumerate(zip(inputs, maps)):
            wanted = legend if legend is not None else isinstance(item, str)
            if with_labels and wanted:
                overlays[i] = draw_legend(overlays[i], np.unique(label_map),
                                          meta.get('classes'),
                                          meta.get('palette'))
            if show:
                self.visualizer.show(overlays[i], win_name=output_names(
                    item, first + i)['img'], wait_time=wait_time)
        if img_out_dir != '':
            _make_folder(img_out_dir)
            for i, (item, overlay) in enumerate(zip(inputs, overlays)):
                name = output_names(item, first + i)['img']
                bgr = np.ascontiguousarray(overlay[..., ::-1])
                write_with(osp.join(img_out_dir, name),
                           functools.partial(_imwrite, img=bgr),
                           inputs=_sources(item), what=f'overlay of '
                           f'{_describe(item, first + i)}')
        return overlays if return_vis else None

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
            names = output_names(path, self.num_pred_imgs)
            what = _describe(path, self.num_pred_imgs)
            out = dict(sem_seg=pred.pred_sem_seg.data[0].cpu().numpy(),
                       ood_mask=pred.ood_mask.data[0].cpu().numpy(),
                       ood_score=pred.ood_score.data[0].cpu().numpy())
            writes = (
                (pred_out_dir, names['pred'], 'label map',
                 functools.partial(_imwrite,
                                   img=out['sem_seg'].astype(np.uint8))),
                (mask_out_dir, names['mask'], 'OOD mask',
                 functools.partial(
                     _imwrite, img=out['ood_mask'].astype(np.uint8) * 255)),
                (score_out_dir, names['score'], 'score map',
                 functools.partial(_save_npy, array=out['ood_score'].astype(
                     np.float32, copy=False))))
            for folder, name, kind, write in writes:
                if folder != '':
                    _make_folder(folder)
                    write_with(osp.join(folder, name), write,
                               inputs=_sources(path),
                               what=f'{kind} of {what}')
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


def draw_legend(overlay: np.ndarray, labels: Iterable[int],
                classes: Optional[Sequence[str]],
                palette: Optional[Sequence[Sequence[int]]]) -> np.ndarray:
    """The overlay with a legend to its right: a colour swatch and the
    name of each class in ``labels``, one per line, never over the image.

    The text height follows the image's (about 1/25 of its height, at
    least 10 pixels, at most 24), so the legend reads at the size the
    overlay is written. The lines fill columns as tall as the image (at
    least 8 lines a column: a legend taller than a small image extends
    the canvas below it, in white).

    Args:
        overlay: ``(H, W, 3)`` uint8 RGB.
        labels: The class indices to name (those present), ascending;
            indices without a name or colour are left out.
        classes: Class names by index (``"unknown"`` included).
        palette: ``(R, G, B)`` by index.

    Returns:
        np.ndarray: ``(max(H, legend height), W + legend width, 3)``
        uint8 RGB, the overlay at its top left; the overlay itself when
        there is nothing to name.
    """
    classes, palette = list(classes or []), list(palette or [])
    rows = [(str(classes[k]), tuple(int(v) for v in palette[k]))
            for k in (int(x) for x in labels)
            if 0 <= k < min(len(classes), len(palette))]
    if not rows:
        return overlay
    h, w = overlay.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    text_h = int(np.clip(round(h / 25), 10, 24))
    scale = cv2.getFontScaleFromHeight(font, text_h, 1)
    thick = 1 if text_h < 18 else 2
    pad = max(4, text_h // 2)
    line = text_h + pad
    per_col = max((h - pad) // line, min(len(rows), 8))
    ncols = -(-len(rows) // per_col)
    widths = []
    for c in range(ncols):
        names = [n for n, _ in rows[c * per_col:(c + 1) * per_col]]
        widths.append(text_h + pad + max(cv2.getTextSize(
            n, font, scale, thick)[0][0] for n in names) + pad)
    height = max(h, min(len(rows), per_col) * line + pad)
    canvas = np.full((height, w + pad + sum(widths), 3), 255, np.uint8)
    canvas[:h, :w] = overlay
    for i, (name, colour) in enumerate(rows):
        c, r = divmod(i, per_col)
        x = w + pad + sum(widths[:c])
        y = pad + r * line
        cv2.rectangle(canvas, (x, y), (x + text_h, y + text_h), colour, -1)
        cv2.rectangle(canvas, (x, y), (x + text_h, y + text_h), (0, 0, 0), 1)
        cv2.putText(canvas, name, (x + text_h + pad // 2 + 2, y + text_h),
                    font, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return canvas


def output_names(item, index: int) -> Dict[str, str]:
    """File names of one input's outputs, by subfolder key: ``img`` (the
    overlay: the input's file name, or ``<index>_vis.jpg`` for an array, as
    mmseg names them), ``pred`` / ``mask`` (``<name>.png``) and ``score``
    (``<name>.npy``); ``<name>`` is the file name without extension, or
    ``index`` as 8 digits.

    Args:
        item: The input: a file path, or an image array (``H x W x 3``).
        index: The input's position among all inputs of the call (names
            an array's outputs).

    Returns:
        dict: ``{'img': ..., 'pred': ..., 'mask': ..., 'score': ...}``,
        bare file names (no folder).
    """
    if isinstance(item, str):
        stem = osp.splitext(osp.basename(item))[0]
        img = osp.basename(item)
    else:
        stem = str(index).zfill(8)
        img = f'{stem}_vis.jpg'
    return dict(img=img, pred=f'{stem}.png', mask=f'{stem}.png',
                score=f'{stem}.npy')


def check_outputs_apart(planned: Dict[str, List[str]],
                        inputs: Iterable[str]) -> None:
    """Refuse, before any work, outputs that would overwrite an input or
    each other.

    Args:
        planned: Output path -> the inputs whose output it is (a list of
            names for messages).
        inputs: Files the run reads (images, videos, config, checkpoint,
            calibration); compared by device and inode, so a symlink or a
            hard link to an input counts as the input.

    Raises:
        OutputPathError: An output is one of the inputs (names both), or
            two inputs would write the same output (names both).
    """
    seen = {}
    for src in inputs:
        key = file_key(src)
        if key is not None:  # else not a file (yet): nothing to overwrite
            seen.setdefault(key, src)
    for path, sources in planned.items():
        if len(sources) > 1:
            raise OutputPathError(
                f'inputs {sources[0]} and {sources[1]} would both write '
                f'{path}: give files of different names (or run them '
                'separately)')
        src = seen.get(file_key(path))
        if src is not None:
            raise OutputPathError(
                f'the output {path} of {sources[0]} is the input {src}: '
                'refusing to write over it; choose another --out-dir')


def _make_folder(path: str) -> None:
    """Create an output folder; a file in its place is refused by name."""
    check_output_dir(path, 'output folder')
    os.makedirs(path, exist_ok=True)


def _sources(item) -> tuple:
    return (item, ) if isinstance(item, str) else ()


def _describe(item, index: int) -> str:
    return item if isinstance(item, str) else f'array input {index}'


def _imwrite(path: str, img: np.ndarray) -> bool:
    """``cv2.imwrite``, whose ``False`` :func:`write_with` takes as a
    failed write."""
    return cv2.imwrite(path, img)


def _save_npy(path: str, array: np.ndarray) -> None:
    # the temporary name ends in .npy, so np.save adds nothing to it
    np.save(path, array)


def _as_bgr(img: np.ndarray, what: str) -> np.ndarray:
    """An array input as a ``(H, W, 3)`` BGR image: grayscale ``(H, W)``
    or ``(H, W, 1)`` and BGRA ``(H, W, 4)`` uint8 arrays are converted;
    anything else is refused naming its shape or dtype."""
    if img.dtype != np.uint8:
        raise OODInputError(
            f'{what} has dtype {img.dtype}; give a uint8 BGR image '
            '(H, W, 3) with values 0-255 (e.g. from cv2.imread)')
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0 \
            or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise OODInputError(
            f'{what} has shape {img.shape}; expected an image (H, W, 3) BGR '
            '(or (H, W) grayscale, (H, W, 4) BGRA) with H, W >= 1')
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGRA2BGR)
    return img


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
