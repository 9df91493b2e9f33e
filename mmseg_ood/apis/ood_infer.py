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

Every file is written atomically (a temporary file in the same folder,
then ``os.replace``); a write that fails is an error, never a success with
files missing. The overlay video is written to a temporary file and moved
into place only once its last frame is written, so an interrupted or
failed run leaves no unplayable ``.mp4``.

A progress line counts images and video frames. What the user must fix
raises a :class:`~mmseg_ood.errors.UserError`, all of them before anything
is written except an image or a video that stops decoding part way:
:class:`~mmseg_ood.apis.OODInputError` (a file of unknown type, an image
file that is no image, a video that does not open or has no frames, two
inputs of one name, a folder without images or videos),
:class:`~mmseg_ood.apis.OODInputNotFoundError` (a missing input, config,
checkpoint or calibration file), :class:`~mmseg_ood.errors.OutputPathError`
(``out_dir`` is a file; an output would overwrite an input, by path or
through a link), :class:`~mmseg_ood.errors.InvalidValueError` (a device
this machine does not have), :class:`~mmseg_ood.errors.DamagedFileError`
(a checkpoint or calibration file that is not one) and
:class:`~mmseg_ood.formats.threshold_file.CalibrationMismatchError` (a
calibration made for another checkpoint, scorer or number of classes). A
failed write is an ``OSError`` naming the file. Anything else is a bug and
propagates as it is.
"""
from __future__ import annotations

import functools
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

from ..deploy.inferencer import (OODInferencer, OODInputError,
                                 OODInputNotFoundError, check_outputs_apart,
                                 output_names)
from ..errors import InvalidValueError
from ..formats.threshold_file import OODCalibration
from ..utils import check_device, resolve_config_path
from ..utils.files import (atomic_output, check_output_dir, file_key,
                           write_with)
from ..utils.progress import progress

__all__ = ['ood_infer', 'collect_inputs', 'IMAGE_EXTENSIONS',
           'VIDEO_EXTENSIONS']

#: File types read as images (what OpenCV decodes) and as videos.
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff',
                    '.webp')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.mpg',
                    '.mpeg', '.m4v')

#: Subfolders of ``out_dir``, by the inferencer's output keys.
_SUBDIRS = dict(img='vis', pred='pred', mask='mask', score='score')


def collect_inputs(inputs: Sequence[str]) -> list:
    """``(kind, path)`` for each input, folders expanded (sorted, not
    recursive), in the order given; ``kind`` is ``'image'`` or
    ``'video'``. The same file given twice (by any name) is taken once.

    Args:
        inputs: Paths of image files, video files and folders (a folder
            contributes the images and videos directly inside it).

    Raises:
        OODInputNotFoundError: An input does not exist (a dangling link
            included).
        OODInputError: A file is neither an image nor a video (by
            extension); a folder holds neither; an image file whose
            contents are no image OpenCV or Pillow reads (empty, text,
            another format: checked by its header); two inputs share a
            name (their outputs would overwrite each other).
    """
    found = []
    for item in inputs:
        item = os.fspath(item)
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
    unique, seen, stems = [], set(), {}
    for kind, path in found:
        key = file_key(path)
        if key in seen:  # the same file again
            continue
        seen.add(key)
        stem = osp.splitext(osp.basename(path))[0]
        if stem in stems:
            raise OODInputError(
                f'inputs {stems[stem]} and {path} have the same name '
                f'{stem!r}: their outputs would overwrite each other; give '
                'them separately')
        stems[stem] = path
        if kind == 'image':
            _check_image_header(path)
        unique.append((kind, path))
    return unique


def _kind(path):
    ext = osp.splitext(path)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return 'image'
    if ext in VIDEO_EXTENSIONS:
        return 'video'
    return None


def _check_image_header(path: str) -> None:
    """Refuse an image file whose header no decoder recognises (cheap: the
    pixels are decoded later, where a truncated file still fails by
    name)."""
    import cv2
    try:
        if cv2.haveImageReader(path):
            return
    except cv2.error:
        pass
    try:
        from PIL import Image
        with Image.open(path):
            return
    except Exception:  # any failure to identify is "no image"
        pass
    size = osp.getsize(path)
    raise OODInputError(
        f'cannot read image {path}: '
        + ('the file is empty' if size == 0 else
           f'its {size} bytes are no image format OpenCV or Pillow reads')
        + '; is it the right file?')


def _open_video(path):
    import mmcv
    reader = mmcv.VideoReader(path)
    if not reader.opened:
        raise OODInputError(f'cannot open video {path}: not a video OpenCV '
                            'decodes (empty, truncated or another format?)')
    return reader


def _count_frames(path: str) -> int:
    """Frames of a video, for the progress count; a video without frames
    is refused by name."""
    reader = _open_video(path)
    count = int(reader.frame_cnt)
    if count <= 0 or reader.width <= 0 or reader.height <= 0:
        # some containers do not record the count: a first frame decides
        if reader.width <= 0 or reader.height <= 0 or reader.read() is None:
            raise OODInputError(f'video {path} has no frames; nothing to '
                                'segment')
        count = 1
    return count


def _video_outputs(path: str, out_dir: str, frames: int) -> dict:
    """The files the video's outputs will be, by their path."""
    stem = osp.splitext(osp.basename(path))[0]
    planned = {osp.join(out_dir, 'vis', f'{stem}.mp4'): [path]}
    for sub in ('pred', 'mask'):
        for i in range(frames):
            planned[osp.join(out_dir, sub, stem, f'{i:06d}.png')] = [path]
    return planned


def _make_folder(path: str) -> str:
    check_output_dir(path, 'output folder')
    os.makedirs(path, exist_ok=True)
    return path


def _imwrite(path: str, img) -> bool:
    import cv2
    return cv2.imwrite(path, img)


def _infer_video(inferencer, path, out_dir, show, opacity, bar,
                 inputs: List[str]) -> int:
    """Overlay video plus per-frame label maps and masks of one video;
    returns the number of frames.

    The overlay video goes to a temporary file, moved to ``vis/<name>.mp4``
    after its last frame; a video that yields no frame, a writer that does
    not open, or any error on the way leaves no ``.mp4`` (nor a
    temporary file) behind.
    """
    reader = _open_video(path)
    stem = osp.splitext(osp.basename(path))[0]

    def frames_of(write_frame=None):
        done = 0
        for frame in reader:
            if frame is None:
                break
            res = inferencer(frame, return_vis=True, show=show,
                             opacity=opacity)
            if write_frame is not None:
                write_frame(done, res)
            done += 1
            bar.update()
        if done == 0:
            raise OODInputError(f'video {path} has no frame that decodes; '
                                'nothing written for it')
        return done

    if not out_dir:
        return frames_of()
    import cv2
    pred_dir = _make_folder(osp.join(out_dir, 'pred', stem))
    mask_dir = _make_folder(osp.join(out_dir, 'mask', stem))
    vis_dir = _make_folder(osp.join(out_dir, 'vis'))
    target = osp.join(vis_dir, f'{stem}.mp4')

    def write_frame(i, res):
        writer.write(res['visualization'][..., ::-1].copy())
        pred = res['predictions']
        name = f'{i:06d}.png'
        write_with(osp.join(pred_dir, name),
                   functools.partial(_imwrite,
                                     img=pred['sem_seg'].astype('uint8')),
                   inputs, f'label map of frame {i} of {path}')
        write_with(osp.join(mask_dir, name),
                   functools.partial(
                       _imwrite, img=pred['ood_mask'].astype('uint8') * 255),
                   inputs, f'OOD mask of frame {i} of {path}')

    try:
        with atomic_output(target, inputs,
                           f'overlay video of {path}') as tmp:
            writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*'mp4v'),
                                     reader.fps or 25.0,
                                     (reader.width, reader.height))
            try:
                if not writer.isOpened():
                    raise OSError(
                        f'cannot write the overlay video {target}: '
                        "OpenCV's VideoWriter did not open (no mp4v "
                        'encoder in this OpenCV build, or the folder is '
                        'not writable)')
                frames = frames_of(write_frame)
            finally:
                writer.release()
    except BaseException:
        for folder in (pred_dir, mask_dir):  # made for this video only
            if not os.listdir(folder):
                os.rmdir(folder)
        raise
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
        ``threshold``, ``ood_label``, ``out_dir`` and ``written`` (the
        number of files written).

    Raises:
        OODInputError: What the user must fix about an input (see the
            module docstring); :class:`OODInputNotFoundError` for a missing
            file.
        OutputPathError: ``out_dir`` is a file, or an output would be one
            of the inputs (or two inputs would write one output).
        CalibrationMismatchError: The calibration was made for another
            checkpoint, scorer or number of classes.
        InvalidValueError: Neither ``out_dir`` nor ``show``; ``opacity``
            outside [0, 1]; a ``device`` this machine does not have.
        OSError: Writing an output failed; the message names the file.
    """
    if not out_dir and not show:
        raise InvalidValueError('give `out_dir` (or `show`): nothing would be '
                                'written')
    if not 0 <= opacity <= 1:
        raise InvalidValueError(f'`opacity` must be in [0, 1], got {opacity}')
    device = str(check_device(device, '--device'))
    items = collect_inputs(inputs)
    calibration = _check_files(config, checkpoint, calibration)
    read = [path for _, path in items] + [
        x for x in (config, checkpoint,
                    getattr(calibration, 'source', None))
        if isinstance(x, str)]
    if out_dir:
        check_output_dir(out_dir, '--out-dir', inputs=read)
    # count frames first: a broken or empty video fails before any work
    counts = [1 if kind == 'image' else _count_frames(path)
              for kind, path in items]
    if out_dir:
        planned = {}
        for (kind, path), count in zip(items, counts):
            if kind == 'image':
                names = output_names(path, 0)
                outs = {osp.join(out_dir, sub, names[key]): [path]
                        for key, sub in _SUBDIRS.items()}
            else:
                outs = _video_outputs(path, out_dir, count)
            for out, sources in outs.items():
                planned.setdefault(out, []).extend(sources)
        check_outputs_apart(planned, read)
    inferencer = OODInferencer(
        config, checkpoint, calibration=calibration, ood_label=ood_label,
        device=device, unsafe_load=unsafe_load, show_progress=False)
    model = inferencer.ood_segmentor
    total = sum(counts)
    print(f'[ood_infer] scorer {model.scorer_name}, threshold '
          f'{model.threshold:.6g}, OOD label {model.ood_label}; '
          f'{len(items)} input(s), {total} image(s) / frame(s)')
    images = frames = 0
    with progress(total, 'ood_infer', unit='images') as bar:
        for kind, path in items:
            if kind == 'image':
                inferencer(path, out_dir=out_dir or '', show=show,
                           opacity=opacity)
                images += 1
                bar.update()
            else:
                frames += _infer_video(inferencer, path, out_dir, show,
                                       opacity, bar, read)
    written = 4 * images + 2 * frames + sum(
        1 for kind, _ in items if kind == 'video') if out_dir else 0
    if out_dir:
        print(f'[ood_infer] {images} image(s), {frames} video frame(s): '
              f'{written} file(s) written under {out_dir} (vis/, pred/, '
              'mask/, score/)')
    return dict(images=images, frames=frames, scorer=model.scorer_name,
                threshold=model.threshold, ood_label=model.ood_label,
                out_dir=out_dir, written=written)
