"""Segment images and videos with "unknown": ``tools/ood_infer.py``.

:func:`ood_infer` runs :class:`~mmseg_ood.apis.OODInferencer` on image
files, video files and folders (their images and videos, sorted, not
recursive) and writes under ``out_dir``:

- per image ``<name>.<ext>``: ``vis/<name>.<ext>`` the overlay ("unknown"
  in its own colour), ``pred/<name>.png`` the label map (OOD pixels =
  ``ood_label``), ``mask/<name>.png`` the OOD mask (0 / 255),
  ``score/<name>.npy`` the score map (float32, ``(H, W)``);
- per video ``<name>.<ext>``: ``vis/<name>.mp4`` the overlay video (same
  size and frame rate, mp4v), and per frame ``pred/<name>/<frame>.png`` and
  ``mask/<name>/<frame>.png`` (6-digit frame numbers from 0). No score maps
  for videos (one float32 map per frame would dwarf the video).

A progress bar counts images and video frames. What the user must fix
raises :class:`~mmseg_ood.apis.OODInputError` (a missing input, config,
checkpoint or calibration file - :class:`~mmseg_ood.apis.
OODInputNotFoundError` -, a file of unknown type, a video that does not
open, two inputs of one name, an image that does not decode) or
:class:`~mmseg_ood.formats.threshold_file.CalibrationMismatchError` (a
calibration made for another checkpoint, scorer or number of classes); all
of them before anything is written, except an image that does not decode
(inference stops there). Anything else is a bug and propagates as it is.
"""
from __future__ import annotations

import os
import os.path as osp
import sys
from typing import Optional, Sequence, Union

from ..deploy.inferencer import (OODInferencer, OODInputError,
                                 OODInputNotFoundError)
from ..formats.threshold_file import OODCalibration
from ..utils import resolve_config_path

__all__ = ['ood_infer', 'collect_inputs', 'IMAGE_EXTENSIONS',
           'VIDEO_EXTENSIONS']

#: File types read as images (what OpenCV decodes) and as videos.
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff',
                    '.webp')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.mpg',
                    '.mpeg', '.m4v')


def collect_inputs(inputs: Sequence[str]) -> list:
    """``(kind, path)`` for each input, folders expanded (sorted, not
    recursive), in the order given; ``kind`` is ``'image'`` or
    ``'video'``.

    Raises:
        OODInputNotFoundError: An input does not exist.
        OODInputError: A file is neither an image nor a video (by
            extension); a folder holds neither; two inputs share a name
            (their outputs would overwrite each other).
    """
    found = []
    for item in inputs:
        if osp.isdir(item):
            names = sorted(os.listdir(item))
            inside = [osp.join(item, n) for n in names
                      if _kind(n) and osp.isfile(osp.join(item, n))]
            if not inside:
                raise OODInputError(
                    f'folder {item} holds no images or videos (extensions '
                    f'{", ".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)})')
            found += [(_kind(f), f) for f in inside]
        elif osp.isfile(item):
            kind = _kind(item)
            if kind is None:
                raise OODInputError(
                    f'unknown file type of {item}: images are '
                    f'{", ".join(IMAGE_EXTENSIONS)}; videos are '
                    f'{", ".join(VIDEO_EXTENSIONS)}')
            found.append((kind, item))
        else:
            raise OODInputNotFoundError(f'input {item} not found')
    seen = {}
    for _, path in found:
        stem = osp.splitext(osp.basename(path))[0]
        if stem in seen:
            raise OODInputError(
                f'inputs {seen[stem]} and {path} have the same name '
                f'{stem!r}: their outputs would overwrite each other; give '
                'them separately')
        seen[stem] = path
    return found


def _kind(path):
    ext = osp.splitext(path)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return 'image'
    if ext in VIDEO_EXTENSIONS:
        return 'video'
    return None


def _open_video(path):
    import mmcv
    reader = mmcv.VideoReader(path)
    if not reader.opened:
        raise OODInputError(f'cannot open video {path}')
    return reader


def _infer_video(inferencer, path, out_dir, show, opacity, progress) -> int:
    """Overlay video plus per-frame label maps and masks of one video;
    returns the number of frames."""
    import cv2
    reader = _open_video(path)
    stem = osp.splitext(osp.basename(path))[0]
    writer = None
    frames = 0
    if out_dir:
        pred_dir = osp.join(out_dir, 'pred', stem)
        mask_dir = osp.join(out_dir, 'mask', stem)
        os.makedirs(pred_dir, exist_ok=True)
        os.makedirs(mask_dir, exist_ok=True)
        os.makedirs(osp.join(out_dir, 'vis'), exist_ok=True)
        writer = cv2.VideoWriter(
            osp.join(out_dir, 'vis', f'{stem}.mp4'),
            cv2.VideoWriter_fourcc(*'mp4v'), reader.fps or 25.0,
            (reader.width, reader.height))
    try:
        for frame in reader:
            if frame is None:
                break
            res = inferencer(frame, return_vis=True, show=show,
                             opacity=opacity)
            if writer is not None:
                writer.write(res['visualization'][..., ::-1].copy())
                pred = res['predictions']
                name = f'{frames:06d}.png'
                cv2.imwrite(osp.join(pred_dir, name),
                            pred['sem_seg'].astype('uint8'))
                cv2.imwrite(osp.join(mask_dir, name),
                            pred['ood_mask'].astype('uint8') * 255)
            frames += 1
            progress.update()
    finally:
        if writer is not None:
            writer.release()
    return frames


def _check_files(config, checkpoint, calibration):
    """Missing config / checkpoint / calibration files as
    :class:`OODInputNotFoundError`; the calibration, loaded."""
    if isinstance(config, str) and not osp.isfile(
            resolve_config_path(config)):
        raise OODInputNotFoundError(f'config file {config} not found')
    if isinstance(checkpoint, str) and not osp.isfile(checkpoint):
        raise OODInputNotFoundError(f'checkpoint file {checkpoint} not '
                                    'found')
    if isinstance(calibration, str):
        try:
            return OODCalibration.load(calibration)
        except FileNotFoundError as e:
            raise OODInputNotFoundError(str(e)) from None
    return calibration


def ood_infer(config,
              checkpoint: str,
              inputs: Sequence[str],
              out_dir: Optional[str] = None,
              calibration: Union[None, str, OODCalibration] = None,
              show: bool = False,
              device: str = 'cpu',
              ood_label: Optional[int] = None,
              opacity: float = 0.8,
              unsafe_load: bool = False) -> dict:
    """Segment images and videos, marking calibrated OOD pixels "unknown".

    Args:
        config: Model config file (or ``mmseg_ood::<path>``, or a
            ``Config``): the plain segmentor, or one whose model is an
            ``OODSegmentor`` (then no ``calibration``).
        checkpoint: Checkpoint of the plain segmentor.
        inputs: Image files, video files and folders.
        out_dir: Output folder (layout: see the module docstring);
            ``None``: write nothing (with ``show``).
        calibration: Calibration file (or its directory) or
            :class:`~mmseg_ood.formats.threshold_file.OODCalibration`; needed
            unless the config builds an ``OODSegmentor``.
        show: Show each overlay in a window.
        device: e.g. ``'cpu'``, ``'cuda:0'``.
        ood_label: Label of OOD pixels (``None``: the calibration's, else
            ``num_classes``).
        opacity: Opacity of the overlay, in [0, 1].
        unsafe_load: Load the checkpoint with full pickle (trusted files
            only).

    Returns:
        dict: ``images`` and ``frames`` (counts done), ``scorer``,
        ``threshold``, ``ood_label`` and ``out_dir``.

    Raises:
        OODInputError: What the user must fix (see the module docstring);
            :class:`OODInputNotFoundError` for a missing file.
        CalibrationMismatchError: The calibration was made for another
            checkpoint, scorer or number of classes.
        ValueError: Neither ``out_dir`` nor ``show``; ``opacity`` outside
            [0, 1].
    """
    from mmengine.utils import ProgressBar
    if not out_dir and not show:
        raise ValueError('give `out_dir` (or `show`): nothing would be '
                         'written')
    if not 0 <= opacity <= 1:
        raise ValueError(f'`opacity` must be in [0, 1], got {opacity}')
    items = collect_inputs(inputs)
    calibration = _check_files(config, checkpoint, calibration)
    # count frames first: a broken video fails before any work
    total = sum(1 if kind == 'image' else _open_video(path).frame_cnt
                for kind, path in items)
    inferencer = OODInferencer(
        config, checkpoint, calibration=calibration, ood_label=ood_label,
        device=device, unsafe_load=unsafe_load, show_progress=False)
    model = inferencer.ood_segmentor
    print(f'[ood_infer] scorer {model.scorer_name}, threshold '
          f'{model.threshold:.6g}, OOD label {model.ood_label}; '
          f'{len(items)} input(s), {total} image(s) / frame(s)')
    progress = ProgressBar(total)
    images = frames = 0
    for kind, path in items:
        if kind == 'image':
            inferencer(path, out_dir=out_dir or '', show=show,
                       opacity=opacity)
            images += 1
            progress.update()
        else:
            frames += _infer_video(inferencer, path, out_dir, show,
                                   opacity, progress)
    sys.stdout.write('\n')
    if out_dir:
        print(f'[ood_infer] {images} image(s), {frames} video frame(s) -> '
              f'{out_dir}')
    return dict(images=images, frames=frames, scorer=model.scorer_name,
                threshold=model.threshold, ood_label=model.ood_label,
                out_dir=out_dir)
