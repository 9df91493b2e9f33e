"""Test (and evaluate) a checkpoint: mmseg's ``tools/test.py`` with
mmseg_ood loaded and checkpoints loaded safely.

    python -m mmseg_ood.tools.test CONFIG CHECKPOINT [--work-dir DIR]
        [--out DIR]
        [--show] [--show-dir DIR] [--wait-time S] [--tta]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
        [--unsafe-load]
"""
import argparse
import os

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
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
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument(
        '--tta', action='store_true', help='test time augmentation')
    parser.add_argument(
        '--unsafe-load', action='store_true',
        help='load the checkpoint with full pickle; only for trusted files '
        '(unpickling can run arbitrary code)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


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
