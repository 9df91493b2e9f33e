"""Test (and evaluate) a checkpoint: mmseg's ``tools/test.py`` with
mmseg_ood loaded and checkpoints loaded safely.

    python -m mmseg_ood.tools.test CONFIG CHECKPOINT [--work-dir DIR]
        [--out DIR]
        [--show] [--show-dir DIR] [--wait-time S] [--tta]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
        [--unsafe-load]
"""

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry
from mmseg_ood.tools.runner_args import (add_runner_arguments,
                                         ends_distributed_runs,
                                         parse_runner_args)


def parse_args(argv=None):
    parser = ToolArgumentParser(
        description='MMSeg test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory where the metrics are dumped as json')
    parser.add_argument(
        '--out', type=str,
        help='the directory to save output predictions for offline '
        'evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images are saved (a relative path is '
        'taken under --work-dir)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--tta', action='store_true', help='test time augmentation')
    add_runner_arguments(parser)
    return parse_runner_args(parser, argv)


@tool_entry('test')
@ends_distributed_runs
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.apis import test
    return test(args.config, args.checkpoint, work_dir=args.work_dir,
                out=args.out, show=args.show, show_dir=args.show_dir,
                wait_time=args.wait_time, tta=args.tta,
                cfg_options=args.cfg_options, launcher=args.launcher,
                unsafe_load=args.unsafe_load)


if __name__ == '__main__':
    main()
