"""Calibrate an OOD decision threshold for deployment.

    python -m mmseg_ood.tools.calibrate_ood CONFIG CHECKPOINT \
        --scorer energy --work-dir DIR \
        (--id-fpr 0.01 [--id-dataset val]            # no OOD labels needed
         | --tpr 0.95 --ood-dataset road_anomaly21   # labelled OOD set
         | --best-f1 --ood-dataset ...) \
        [--scorer-options eta=1.5] [--sml-stats FILE | --sml-fit-on train] \
        [--level 0.95] [--ood-label N] [--out FILE] \
        [--cfg-options ...] [--launcher none|pytorch|slurm] [--unsafe-load]

(or ``python tools/calibrate_ood.py`` in a clone). Writes
DIR/calibration.json (see :mod:`mmseg_ood.formats.threshold_file`), which
``tools/ood_infer.py`` and ``tools/export_onnx.py`` take.
"""
import argparse

from mmengine.config import DictAction

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry
from mmseg_ood.tools.runner_args import (add_runner_arguments,
                                         add_vis_backend_argument,
                                         ends_distributed_runs,
                                         parse_runner_args)


def _rate(value: str) -> float:
    from mmseg_ood.formats.threshold_file import check_rate
    try:
        return check_rate(float(value), 'the value')
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'must be a rate in (0, 1), got {value!r}') from None


def parse_args(argv=None):
    p = ToolArgumentParser(
        description='Choose and record the threshold of an OOD scorer')
    p.add_argument('config', help='model config file (or mmseg_ood::<path>)')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--scorer', default='energy',
                   help='the scorer to calibrate (default: energy)')
    p.add_argument('--work-dir', help='directory for calibration.json and '
                   'logs')
    rule = p.add_mutually_exclusive_group(required=True)
    rule.add_argument('--id-fpr', type=_rate, metavar='RATE',
                      help='flag at most this share of ID pixels (ID data '
                      'only, no OOD labels)')
    rule.add_argument('--tpr', type=_rate, metavar='RATE',
                      help='flag at least this share of the OOD pixels of '
                      '--ood-dataset')
    rule.add_argument('--best-f1', action='store_true',
                      help='the best pixel-F1 threshold on --ood-dataset')
    p.add_argument('--id-dataset', help="ID data of --id-fpr: the config's "
                   "'val' (default), 'train' or 'test' set, or a dataset "
                   'preset (its ID pixels)')
    p.add_argument('--ood-dataset', help='labelled OOD dataset preset of '
                   '--tpr / --best-f1')
    p.add_argument('--scorer-options', nargs='+', action=DictAction,
                   help="the scorer's parameters, e.g. eta=1.5 (as tuned "
                   'by tools/ood_test.py --tune)')
    p.add_argument('--sml-stats', help='statistics file of the sml scorer')
    p.add_argument('--sml-fit-on', default='train', choices=['train', 'val'],
                   help="the ID split sml's statistics are fitted on")
    p.add_argument('--level', type=_rate, default=0.95,
                   help='confidence level of the achieved rates (0.95)')
    p.add_argument('--ood-label', type=int,
                   help='label of OOD pixels in predictions (default: '
                   'num_classes, a new "unknown" class)')
    p.add_argument('--out', help='calibration file (default: '
                   'WORK_DIR/calibration.json)')
    add_vis_backend_argument(p, 'the threshold and the achieved rates')
    add_runner_arguments(p)
    return parse_runner_args(p, argv)


@tool_entry('calibrate_ood')
@ends_distributed_runs
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.apis import calibrate_ood
    return calibrate_ood(
        args.config, args.checkpoint, scorer=args.scorer,
        work_dir=args.work_dir, id_fpr=args.id_fpr, tpr=args.tpr,
        best_f1=args.best_f1, id_dataset=args.id_dataset,
        ood_dataset=args.ood_dataset, scorer_options=args.scorer_options,
        sml_stats=args.sml_stats, sml_fit_on=args.sml_fit_on,
        level=args.level, ood_label=args.ood_label, out=args.out,
        cfg_options=args.cfg_options, launcher=args.launcher,
        unsafe_load=args.unsafe_load, vis_backends=args.vis_backends)


if __name__ == '__main__':
    main()
