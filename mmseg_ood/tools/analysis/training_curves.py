"""Training curves of several runs: loss and per-class IoU over iterations.

    python -m mmseg_ood.tools.analysis.training_curves \
        WORK_DIR [WORK_DIR ...] \
        [--names ...] --out DIR

(or ``python tools/training_curves.py`` in a clone). Reads each run's
mmengine ``scalars.json``; writes DIR/training_curves.png and .md. Per-class
IoU needs the runs validated with ``PerClassIoUMetric``
(``--cfg-options val_evaluator.type=PerClassIoUMetric
train_cfg.val_interval=50``). The loss terms' gradient norms and the
largest UOI term need the losses wrapped in ``MonitoredLoss`` (the .md then
lists each run's largest terms); per-iteration values need
``default_hooks.logger.interval=1 log_processor.window_size=1``.
"""
import argparse
import os
import os.path as osp


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Training curves of runs')
    p.add_argument('work_dirs', nargs='+', help="the runs' work dirs")
    p.add_argument('--names', nargs='+', help='names of the runs (default: '
                   'the work dirs\' names)')
    p.add_argument('--out', required=True, help='output directory')
    args = p.parse_args(argv)
    if args.names and len(args.names) != len(args.work_dirs):
        p.error(f'--names gives {len(args.names)} names for '
                f'{len(args.work_dirs)} work dirs')
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.reports.training_log import (plot_training_log,
                                                read_scalars, spikes_markdown,
                                                training_log_markdown)
    from mmseg_ood.utils.files import dump_text
    names = args.names or [osp.basename(osp.normpath(w))
                           for w in args.work_dirs]
    try:
        runs = {n: read_scalars(w) for n, w in zip(names, args.work_dirs)}
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'training_curves: error: {e}')
    os.makedirs(args.out, exist_ok=True)
    md = osp.join(args.out, 'training_curves.md')
    spikes = spikes_markdown(runs)
    dump_text(training_log_markdown(runs) +
              ('\n' + spikes if spikes else ''), md)
    png = plot_training_log(runs, osp.join(args.out, 'training_curves.png'))
    print(f'[training_curves] {md}, {png}')
    return runs


if __name__ == '__main__':
    main()
