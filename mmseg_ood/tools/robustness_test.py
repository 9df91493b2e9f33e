"""Robustness to corrupted input (SCrIBE sec. 4, Tables 1-2, Fig. 5-6):
several models on the same corrupted copies of their test set.

    python -m mmseg_ood.tools.robustness_test CONFIG CHECKPOINT \
        [CONFIG CHECKPOINT ...] --work-dir DIR [--names A B ...] \
        [--corruptions all|gaussian_noise ...] [--severities 1 2 3 4 5] \
        [--msc] [--ood-datasets synthetic_ood ...] [--cache-dir DIR] \
        [--seed 0] [--cfg-options ...] [--launcher none|pytorch|slurm] \
        [--unsafe-load]

(or ``python tools/robustness_test.py`` in a clone). Writes
DIR/robustness.json, .csv, .md, fig5_severity.png and fig6_examples.png,
and ends with the path of the tables and each model's clean and corrupted
mIoU; an interrupted run resumes from DIR/robustness.partial.json (a
damaged one is set aside as robustness.partial.json.damaged, one of a run
with other settings refused by name). Model names (``--names``, default:
the config file names) are refused before any work if they hold ``|``, a
path separator, a line break, are empty, ``..``, or repeat another.
"""
import os.path as osp

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry
from mmseg_ood.tools.runner_args import (add_runner_arguments,
                                         add_vis_backend_argument,
                                         ends_distributed_runs, model_pairs,
                                         parse_runner_args)


def parse_args(argv=None):
    p = ToolArgumentParser(
        description='Several models on corrupted copies of their test set')
    p.add_argument('models', nargs='+', metavar='CONFIG CHECKPOINT',
                   help='config and checkpoint of each model, in pairs')
    p.add_argument('--work-dir', required=True,
                   help='directory for results, logs and the resume file')
    p.add_argument('--names', nargs='+', help='a name per model (default: '
                   'the config file names)')
    p.add_argument('--corruptions', nargs='+', default=['all'],
                   help="ImageNet-C corruption names, or 'all' (the first "
                   '15)')
    p.add_argument('--severities', nargs='+', type=int,
                   default=[1, 2, 3, 4, 5],
                   help='severities (1-5; the clean images always run)')
    p.add_argument('--msc', action='store_true',
                   help="also test with multi-scale + flip (the config's "
                   'tta_pipeline)')
    p.add_argument('--ood-datasets', nargs='+', default=[],
                   help='OOD dataset presets scored under each corruption')
    p.add_argument('--cache-dir', help='keep the corrupted images here for '
                   'later runs (default: a cache in the work dir, removed '
                   'at the end)')
    p.add_argument('--seed', type=int, default=0,
                   help='base seed of the corruptions')
    add_vis_backend_argument(p, 'the results (scalars, figures)')
    add_runner_arguments(p)
    args = parse_runner_args(p, argv)
    pairs = model_pairs(p, args.models)
    names = args.names or [
        osp.splitext(osp.basename(c.split('::')[-1]))[0] for c, _ in pairs]
    if len(names) != len(pairs):
        p.error(f'--names gives {len(names)} names for {len(pairs)} models')
    args.pairs, args.model_names = pairs, names
    return args


@tool_entry('robustness_test')
@ends_distributed_runs
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.apis.robustness_test import ModelSpec, robustness_test
    models = [ModelSpec(n, c, k)
              for n, (c, k) in zip(args.model_names, args.pairs)]
    return robustness_test(
        models, args.work_dir, corruptions=args.corruptions,
        severities=args.severities, msc=args.msc,
        ood_datasets=args.ood_datasets, cache_dir=args.cache_dir,
        seed=args.seed, cfg_options=args.cfg_options,
        launcher=args.launcher, unsafe_load=args.unsafe_load,
        vis_backends=args.vis_backends)


if __name__ == '__main__':
    main()
