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
import os
import os.path as osp

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry


def parse_args(argv=None):
    p = ToolArgumentParser(description='Training curves of runs')
    p.add_argument('work_dirs', nargs='+', help="the runs' work dirs")
    p.add_argument('--names', nargs='+', help='names of the runs (default: '
                   'the work dirs\' names)')
    p.add_argument('--out', required=True, help='output directory')
    args = p.parse_args(argv)
    if args.names and len(args.names) != len(args.work_dirs):
        p.error(f'--names gives {len(args.names)} names for '
                f'{len(args.work_dirs)} work dirs')
    names = args.names or [osp.basename(osp.normpath(w))
                           for w in args.work_dirs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        p.error(f'two runs are named {twice[0]!r} (the work dirs\' '
                'names by default): give each its own with --names')
    return args


@tool_entry('training_curves')
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.reports.training_log import (plot_training_log,
                                                read_scalars, spikes_markdown,
                                                training_log_markdown)
    from mmseg_ood.utils.files import check_output_dir, dump_text
    check_output_dir(args.out, '--out')
    names = args.names or [osp.basename(osp.normpath(w))
                           for w in args.work_dirs]
    runs = {n: read_scalars(w) for n, w in zip(names, args.work_dirs)}
    os.makedirs(args.out, exist_ok=True)
    md = osp.join(args.out, 'training_curves.md')
    spikes = spikes_markdown(runs)
    text = training_log_markdown(runs) + ('\n' + spikes if spikes else '')
    png = plot_training_log(runs, osp.join(args.out, 'training_curves.png'))
    dump_text(text, md, what='--out')
    print(f'training_curves: {len(runs)} run(s); wrote {md}, {png}')
    for name, data in runs.items():
        print('  ' + _headline(name, data))
    return runs


def _headline(name: str, data: dict) -> str:
    """``<name>: <n> iterations, last loss <x>, best mIoU <y> at <i>``."""
    train, val = data['train'], data['val']
    parts = [f'{len(train)} training line(s)']
    if train:
        parts.append(f'last loss {train[-1]["loss"]:.4g} at '
                     f'{train[-1]["step"]}')
    scored = [r for r in val if 'mIoU' in r and r['mIoU'] == r['mIoU']]
    if scored:
        best = max(scored, key=lambda r: r['mIoU'])
        parts.append(f'best mIoU {best["mIoU"]:.2f} at {best["step"]}')
    return f'{name}: ' + ', '.join(parts)


if __name__ == '__main__':
    main()
