"""Export a checkpoint with its calibrated OOD scorer and threshold to ONNX.

    python -m mmseg_ood.tools.export_onnx CONFIG CHECKPOINT \\
        --calibration CALIB.json --out model.onnx [--shape H W] [--dynamic] \\
        [--check-image IMG | --no-check] [--exporter torchscript|dynamo] \\
        [--opset 17] [--cfg-options ...] [--unsafe-load]

(or ``python tools/export_onnx.py`` in a clone). The graph takes raw BGR
images ``img`` ``(N, 3, H, W)`` float32 in [0, 255] and returns ``pred``
(class map, OOD pixels set to the calibration's ``ood_label``), ``score``
and ``ood_mask`` (see :mod:`mmseg_ood.deploy.onnx_export`; a NaN score is
OOD). With ``--dynamic`` the TorchScript exporter leaves batch, height and
width dynamic, ``--exporter dynamo`` height and width (batch 1). After the
export the tool runs the file with onnxruntime on a random image (or
``--check-image``), compares it with the PyTorch deployment
(``OODSegmentor`` with the same calibration) and prints the result.

Every input (the calibration, the checkpoint's weights against it, the
check image, ``--out``) is checked before any work, and the file is
written atomically once the check passed: a refused, failed or
interrupted export leaves a previous ``--out`` as it was. A model that
cannot be exported, a failed check or any other user error prints one
line, ``export_onnx: error: <reason>``, and exits with status 2 (0 on
success). Manual: ``docs/en/user_guides/export_onnx.md``.
"""
import json

from mmengine.config import DictAction

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry


def parse_args(argv=None):
    p = ToolArgumentParser(
        description='Export a model + calibrated OOD scorer + threshold to '
        'ONNX and check it with onnxruntime')
    p.add_argument('config', help='model config file')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--calibration', required=True,
                   help='calibration file written by tools/calibrate_ood.py '
                   '(or its directory); must be made for CHECKPOINT')
    p.add_argument('--out', required=True, help='the .onnx file to write')
    p.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'),
                   help='input size (fixed), or with --dynamic the size '
                   "traced and checked (default: the test pipeline's "
                   'Resize scale)')
    p.add_argument('--dynamic', action='store_true',
                   help='dynamic batch, height and width (height and width '
                   'only, batch 1, with --exporter dynamo; whole inference '
                   'only)')
    p.add_argument('--check-image',
                   help='image for the onnxruntime check (resized to the '
                   'shape); default: a random image')
    p.add_argument('--no-check', action='store_true',
                   help='skip the onnxruntime check')
    p.add_argument('--exporter', choices=['torchscript', 'dynamo'],
                   default='torchscript',
                   help='torch.onnx exporter (default: torchscript; '
                   'dynamo fixes the batch at 1; see '
                   'docs/en/user_guides/export_onnx.md)')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset')
    p.add_argument('--seed', type=int, default=0,
                   help='seed of the random check image')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override settings of the config, key=value pairs, '
                   'e.g. model.test_cfg.mode=whole')
    p.add_argument('--unsafe-load', action='store_true',
                   help='load the checkpoint with full pickle; only for '
                   'trusted files (unpickling can run arbitrary code)')
    return p.parse_args(argv)


@tool_entry('export_onnx')
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.deploy.onnx_export import export_onnx
    result = export_onnx(
        args.config, args.checkpoint, args.calibration, args.out,
        shape=args.shape, dynamic=args.dynamic,
        check=not args.no_check, check_image=args.check_image,
        opset=args.opset, exporter=args.exporter,
        cfg_options=args.cfg_options, unsafe_load=args.unsafe_load,
        seed=args.seed)
    check = result.pop('check', None)
    h, w = result['shape']
    axes = result['dynamic_axes']
    if not axes:
        layout = f'fixed 1x3x{h}x{w}'
    else:
        layout = 'dynamic ' + ', '.join(axes)
        if 'N' not in axes:
            layout += ', batch fixed at 1'
    print(f'wrote {result["out"]} ({result["exporter"]} exporter, opset '
          f'{result["opset"]}, input img (N, 3, H, W) float32 BGR, '
          f'{layout}); scorer {result["scorer"]!r}, threshold '
          f'{result["threshold"]:.6g}, ood_label {result["ood_label"]}; '
          f'export {result["seconds"]:.1f} s')
    if check is not None:
        print(check.summary())
        print(json.dumps(dict(result, check=check.to_dict())))
    return dict(result, check=check)


if __name__ == '__main__':
    main()
