"""Representation structure of several models' logits (SCrIBE paper,
sec. 4, "Inspection of Representation Structure"): Fig. 3 and Fig. 4.

    python -m mmseg_ood.tools.analyze_representation \
        CONFIG CHECKPOINT [CONFIG CHECKPOINT ...] --work-dir DIR \
        [--names baseline ibe scribe] [--classes 1 3] \
        [--cfg-options ...] [--launcher none|pytorch|slurm] [--unsafe-load]

(or ``python tools/analyze_representation.py`` in a clone). Each model
runs once over its config's own test set. Writes DIR/representation.json,
DIR/representation.md (model | k | pixels | dims 90% | dims 95%, also
printed), DIR/explained_variance.png (Fig. 4) and
DIR/autocorrelation_class<c>.png per class of ``--classes`` (Fig. 3;
default: the class the first model predicts most often); each model's
logs go to DIR/<name>.
"""

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry
from mmseg_ood.tools.runner_args import (add_runner_arguments,
                                         ends_distributed_runs, model_pairs,
                                         parse_runner_args)


def parse_args(argv=None):
    p = ToolArgumentParser(
        description='Auto-correlation (Fig. 3) and accumulated explained '
        'variance (Fig. 4) of the logits of one or more models')
    p.add_argument('models', nargs='+', metavar='CONFIG CHECKPOINT',
                   help='pairs of a model config file (or mmseg_ood::<path>) '
                   'and its checkpoint file')
    p.add_argument('--work-dir', required=True,
                   help='directory for results (and each model\'s logs in '
                   '<work-dir>/<name>)')
    p.add_argument('--names', nargs='+',
                   help='a unique label per model (default: the config '
                   'file names)')
    p.add_argument('--classes', nargs='+', type=int,
                   help='classes whose auto-correlation matrices are drawn '
                   '(default: the class the first model predicts most '
                   'often)')
    add_runner_arguments(p)
    args = parse_runner_args(p, argv)
    args.models = model_pairs(p, args.models)
    return args


@tool_entry('analyze_representation')
@ends_distributed_runs
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.apis import analyze_representation
    return analyze_representation(
        args.models, work_dir=args.work_dir, names=args.names,
        classes=args.classes, cfg_options=args.cfg_options,
        launcher=args.launcher, unsafe_load=args.unsafe_load)


if __name__ == '__main__':
    main()
