"""Train a segmentor: mmseg's ``tools/train.py`` with mmseg_ood loaded.

    python -m mmseg_ood.tools.train CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
        [--unsafe-load]
"""

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry
from mmseg_ood.tools.runner_args import (add_runner_arguments,
                                         ends_distributed_runs,
                                         parse_runner_args)


def parse_args(argv=None):
    parser = ToolArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', action='store_true', default=False,
        help='resume from the latest checkpoint in the work_dir '
        'automatically')
    parser.add_argument(
        '--amp', action='store_true', default=False,
        help='enable automatic-mixed-precision training')
    add_runner_arguments(
        parser, unsafe_help='load load_from/resume checkpoints with full '
        'pickle; only for trusted files (unpickling can run arbitrary code)')
    return parse_runner_args(parser, argv)


@tool_entry('train')
@ends_distributed_runs
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.apis import train
    train(args.config, work_dir=args.work_dir, resume=args.resume,
          amp=args.amp, cfg_options=args.cfg_options, launcher=args.launcher,
          unsafe_load=args.unsafe_load)


if __name__ == '__main__':
    main()
