"""Segment images and videos, marking calibrated OOD pixels "unknown".

    python tools/ood_infer.py CONFIG CHECKPOINT --calibration CALIB
        INPUTS... --out-dir OUT [--show] [--device cpu] [--ood-label N]
        [--opacity 0.8] [--unsafe-load]

``INPUTS`` are image files, video files and folders (their images and
videos, sorted, not recursive). Runs :class:`~mmseg_ood.apis.OODInferencer`
on each and writes under ``OUT``:

- per image ``<name>.<ext>``: ``vis/<name>.<ext>`` the overlay ("unknown"
  in its own colour), ``pred/<name>.png`` the label map (OOD pixels =
  ``ood_label``), ``mask/<name>.png`` the OOD mask (0 / 255),
  ``score/<name>.npy`` the score map (float32, ``(H, W)``);
- per video ``<name>.<ext>``: ``vis/<name>.mp4`` the overlay video (same
  size and frame rate, mp4v), and per frame ``pred/<name>/<frame>.png`` and
  ``mask/<name>/<frame>.png`` (6-digit frame numbers from 0). No score maps
  for videos (one float32 map per frame would dwarf the video).

A progress bar counts images and video frames. Errors name what failed:
a missing input, a file of unknown type, an unreadable image, a
calibration made for another checkpoint; the tool then exits with status 2
before writing anything, or (unreadable image) stops there.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

#: File types read as images (what OpenCV decodes) and as videos.
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff',
                    '.webp')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.mpg',
                    '.mpeg', '.m4v')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Segment images and videos with a calibrated OOD '
        '"unknown" class')
    p.add_argument('config', help='model config (the plain segmentor, or '
                   'one whose model is an OODSegmentor)')
    p.add_argument('checkpoint', help='checkpoint of the plain segmentor')
    p.add_argument('inputs', nargs='+',
                   help='image files, video files and folders')
    p.add_argument('--calibration',
                   help='calibration file (or its directory) from '
                   'tools/calibrate_ood.py; needed unless the config '
                   'builds an OODSegmentor')
    p.add_argument('--out-dir', help='output folder (see --help of the '
                   'module for the layout); required unless --show')
    p.add_argument('--show', action='store_true',
                   help='show each overlay in a window')
    p.add_argument('--device', default='cpu', help="e.g. 'cpu', 'cuda:0'")
    p.add_argument('--ood-label', type=int,
                   help='label of OOD pixels (default: the calibration\'s, '
                   'else num_classes, a new class "unknown")')
    p.add_argument('--opacity', type=float, default=0.8,
                   help='opacity of the overlay (0-1)')
    p.add_argument('--unsafe-load', action='store_true',
                   help='load the checkpoint with full pickle (trusted '
                   'files only)')
    args = p.parse_args(argv)
    if not args.out_dir and not args.show:
        p.error('give --out-dir (or --show): nothing would be written')
    if not 0 <= args.opacity <= 1:
        p.error(f'--opacity must be in [0, 1], got {args.opacity}')
    return args


def collect_inputs(inputs) -> list:
    """``(kind, path)`` for each input, folders expanded (sorted, not
    recursive), in the order given.

    Raises:
        FileNotFoundError: An input does not exist.
        ValueError: A file is neither an image nor a video (by extension);
            a folder holds neither; two inputs share a name (their outputs
            would overwrite each other).
    """
    found = []
    for item in inputs:
        if osp.isdir(item):
            names = sorted(os.listdir(item))
            inside = [osp.join(item, n) for n in names
                      if _kind(n) and osp.isfile(osp.join(item, n))]
            if not inside:
                raise ValueError(
                    f'folder {item} holds no images or videos (extensions '
                    f'{", ".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)})')
            found += [(_kind(f), f) for f in inside]
        elif osp.isfile(item):
            kind = _kind(item)
            if kind is None:
                raise ValueError(
                    f'unknown file type of {item}: images are '
                    f'{", ".join(IMAGE_EXTENSIONS)}; videos are '
                    f'{", ".join(VIDEO_EXTENSIONS)}')
            found.append((kind, item))
        else:
            raise FileNotFoundError(f'input {item} not found')
    seen = {}
    for _, path in found:
        stem = osp.splitext(osp.basename(path))[0]
        if stem in seen:
            raise ValueError(f'inputs {seen[stem]} and {path} have the same '
                             f'name {stem!r}: their outputs would overwrite '
                             'each other; give them separately')
        seen[stem] = path
    return found


def _kind(path):
    ext = osp.splitext(path)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return 'image'
    if ext in VIDEO_EXTENSIONS:
        return 'video'
    return None


def infer_video(inferencer, path, out_dir, show, opacity, progress):
    """Overlay video plus per-frame label maps and masks of one video."""
    import cv2
    import mmcv
    reader = mmcv.VideoReader(path)
    if not reader.opened:
        raise ValueError(f'cannot open video {path}')
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


def frame_count(path) -> int:
    import mmcv
    reader = mmcv.VideoReader(path)
    if not reader.opened:
        raise ValueError(f'cannot open video {path}')
    return reader.frame_cnt


def run(args) -> dict:
    """Everything after argument parsing; returns counts for the summary."""
    from mmengine.utils import ProgressBar

    from mmseg_ood.apis import OODInferencer
    items = collect_inputs(args.inputs)
    # count frames first: a broken video fails before any work
    total = sum(1 if kind == 'image' else frame_count(path)
                for kind, path in items)
    inferencer = OODInferencer(
        args.config, args.checkpoint, calibration=args.calibration,
        ood_label=args.ood_label, device=args.device,
        unsafe_load=args.unsafe_load, show_progress=False)
    model = inferencer.ood_segmentor
    print(f'[ood_infer] scorer {model.scorer_name}, threshold '
          f'{model.threshold:.6g}, OOD label {model.ood_label}; '
          f'{len(items)} input(s), {total} image(s) / frame(s)')
    progress = ProgressBar(total)
    images = frames = 0
    for kind, path in items:
        if kind == 'image':
            inferencer(path, out_dir=args.out_dir or '', show=args.show,
                       opacity=args.opacity)
            images += 1
            progress.update()
        else:
            frames += infer_video(inferencer, path, args.out_dir,
                                  args.show, args.opacity, progress)
    sys.stdout.write('\n')
    if args.out_dir:
        print(f'[ood_infer] {images} image(s), {frames} video frame(s) -> '
              f'{args.out_dir}')
    return dict(images=images, frames=frames)


def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.calibration_file import CalibrationMismatchError
    try:
        return run(args)
    except (FileNotFoundError, CalibrationMismatchError, ValueError) as e:
        print(f'ood_infer: error: {e}', file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == '__main__':
    main()
