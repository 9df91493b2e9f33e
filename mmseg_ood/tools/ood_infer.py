"""Segment images and videos, marking calibrated OOD pixels "unknown".

    python -m mmseg_ood.tools.ood_infer CONFIG CHECKPOINT
        --calibration CALIB INPUTS... --out-dir OUT [--show] [--device cpu]
        [--ood-label N] [--opacity 0.8] [--unsafe-load]

(or ``python tools/ood_infer.py`` in a clone). ``INPUTS`` are image files,
video files and folders; see :func:`mmseg_ood.apis.ood_infer` for what is
written under ``OUT``. What the user must fix (a missing input, config,
checkpoint or calibration file, a file of unknown type, an unreadable
image, an empty video, a damaged checkpoint, an ``--out-dir`` that is a
file or whose outputs would overwrite an input, a ``--device`` this
machine does not have, a calibration made for another checkpoint or
scorer) and a failed write end the tool with a one-line message and exit
status 2 (``mmseg_ood.tools.entry``); anything else is a bug and keeps its
traceback.
"""
from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry


def parse_args(argv=None):
    p = ToolArgumentParser(
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


@tool_entry('ood_infer')
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.apis import ood_infer
    return ood_infer(
        args.config, args.checkpoint, args.inputs, out_dir=args.out_dir,
        calibration=args.calibration, show=args.show, device=args.device,
        ood_label=args.ood_label, opacity=args.opacity,
        unsafe_load=args.unsafe_load)


if __name__ == '__main__':
    main()
