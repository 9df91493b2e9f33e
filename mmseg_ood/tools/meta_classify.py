"""Meta classification of OOD segments (entropy-maximization paper, sec. 4,
7 and appendix B): Table 2, Table 3 and Fig. 7 for a checkpoint.

    python -m mmseg_ood.tools.meta_classify CONFIG CHECKPOINT --work-dir DIR \
        [--datasets fs_lost_and_found ...] [--scorer entropy] \
        [--thresholds 0.3 0.4 0.5 0.6 0.7] [--cv auto|loo|K] \
        [--features all|paper] [--save meta.json] \
        [--cfg-options ...] [--launcher none|pytorch|slurm] [--unsafe-load]

(or ``python tools/meta_classify.py`` in a clone). Writes
DIR/meta_results.json, .csv, .md and DIR/detection_errors_<dataset>.png;
``--save`` writes the classifiers (JSON) that ``tools/ood_test.py
--meta-classifier`` applies.
"""
import argparse

from mmseg_ood.evaluation.metrics.segment_metric import \
    DEFAULT_SEGMENT_THRESHOLDS
from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry
from mmseg_ood.tools.runner_args import (add_evaluation_arguments,
                                         add_runner_arguments,
                                         add_vis_backend_argument,
                                         ends_distributed_runs,
                                         parse_runner_args)


def _cv(value: str):
    if value in ('loo', 'auto'):
        return value
    try:
        k = int(value)
    except ValueError:
        k = 0
    if k < 2:
        raise argparse.ArgumentTypeError(
            f"must be 'loo', 'auto' or a number of folds >= 2, got "
            f'{value!r}')
    return k


def parse_args(argv=None):
    p = ToolArgumentParser(
        description='Meta classification of OOD segments (Table 2 / 3)')
    add_evaluation_arguments(p, '; each is cross-validated on its own')
    p.add_argument('--scorer', default='entropy',
                   help='the score map whose connected components are the '
                   'OOD segments (default: entropy, the normalized entropy '
                   'of the paper)')
    p.add_argument('--thresholds', nargs='+', type=float,
                   default=list(DEFAULT_SEGMENT_THRESHOLDS),
                   help='segment thresholds t (score >= t), in the '
                   "scorer's units")
    p.add_argument('--cv', type=_cv, default='auto',
                   help="'loo' (leave one image out, as the paper), K "
                   "(K folds grouped by image) or 'auto' (loo up to 100 "
                   'images, else 10 folds)')
    p.add_argument('--features', default='all', choices=['all', 'paper'],
                   help="every feature, or the paper's 46 (for 19 classes)")
    p.add_argument('--C', type=float, default=1.0,
                   help='inverse L2 strength of the logistic regression')
    p.add_argument('--save', help='JSON file for the classifiers fitted on '
                   'every segment (one per threshold)')
    add_vis_backend_argument(p, 'the results (scalars, figures)')
    add_runner_arguments(p)
    return parse_runner_args(p, argv)


@tool_entry('meta_classify')
@ends_distributed_runs
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.apis import meta_classify
    return meta_classify(
        args.config, args.checkpoint, work_dir=args.work_dir,
        datasets=args.datasets, scorer=args.scorer,
        thresholds=args.thresholds, cv=args.cv, save=args.save,
        feature_set=args.features, C=args.C, cfg_options=args.cfg_options,
        launcher=args.launcher, unsafe_load=args.unsafe_load,
        vis_backends=args.vis_backends)


if __name__ == '__main__':
    main()
