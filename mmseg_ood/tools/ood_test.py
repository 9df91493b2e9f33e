"""Score a checkpoint on OOD datasets with every scorer in one pass.

    python -m mmseg_ood.tools.ood_test CONFIG CHECKPOINT --work-dir DIR \
        [--datasets road_anomaly21 road_obstacle21 fs_lost_and_found ...] \
        [--scorers msp energy n_energy sml ...] \
        [--fit-on train|val] [--sml-stats FILE] \
        [--tune eta delta temperature=0.01,0.1,1] [--tune-on DATASET] \
        [--open-set-iou] [--show-dir DIR --show-num N] [--export-smiyc DIR] \
        [--export-transform rank|none] [--tta] \
        [--component-threshold best-f1|smiyc|VALUE|from:DATASET|tpr:RATE] \
        [--per-image] [--bootstrap N [--bootstrap-seed S]
        [--bootstrap-level L]] [--meta-classifier meta.json] \
        [--cfg-options ...] [--launcher none|pytorch|slurm] [--unsafe-load]

(or ``python tools/ood_test.py`` in a clone). CONFIG is a file or
``mmseg_ood::<path>`` for a config shipped with the package. Writes
DIR/results.json, results.csv, results.md and DIR/curves/*.png. Dataset
names are the presets shipped in configs/_base_/datasets/ood/ (or paths to
preset files); their data roots come from environment variables named in
each preset. The scorers fitted on ID data (``sml``, ``react``, ``dice``,
``vim``, ``mahalanobis``, ``rmd``, ``knn``) are fitted together, in one
pass over the config's training set (``--fit-on val`` for the validation
set); the statistics are cached in DIR (``sml_statistics_<split>.json``,
``feature_statistics_<split>.npz``) and reused while the checkpoint, config
and split are the same; ``--sml-stats FILE`` or ``NAME:stats_file=FILE``
loads fitted ones instead.
``--meta-classifier FILE`` (written by ``tools/meta_classify.py --save``)
adds the meta-classified maps ``<scorer>+meta@<t>`` and the segment-wise
detection errors without and with the classifier. ``--export-smiyc`` maps
each scorer's scores through a monotone transform into [0, 1] before the
float16 cast (recorded in ``<method>/<dataset>.score_transform.json``), so
that metrics computed from the files equal the tool's; ``--export-transform
none`` casts the raw scores. ``--component-threshold`` picks the threshold
of the component metrics: each dataset's own best pixel F1 (default, the
SMIYC benchmark's oracle), a fixed value, the best-F1 threshold of another
dataset, or the threshold at a pixel TPR. ``--per-image`` adds AUROC / AP /
FPR95 averaged over images next to the pooled ones, and DIR/per_image.csv.
``--bootstrap N`` adds percentile bootstrap intervals of the pooled AUROC /
AP / FPR95, N resamples of the images (``--bootstrap-level``, default 0.95;
``--bootstrap-seed``, default 0).
``--tune`` takes each parameter alone (its default grid) or with values of
its own, ``temperature=0.01,0.1,1`` (AP against each parameter in
DIR/tuning/ap_vs_<param>.png). ``--scorers maskomaly --tune-on REF`` first
selects maskomaly's queries on the labelled reference set REF (one pass;
REF must not be one of --datasets), writes the selection to
DIR/maskomaly_queries_REF.json and reuses it while the checkpoint is the
same; ``maskomaly:queries_file=FILE`` loads one instead.
DIR/distributions/<dataset>.png and .json hold each scorer's ID and OOD
score histograms. ``--open-set-iou`` adds the ID mIoU with an OOD class at
entropy thresholds (DIR/curves/open_set_miou.png, entropy-maximization
Fig. 5).
"""
import argparse

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry
from mmseg_ood.tools.runner_args import (add_evaluation_arguments,
                                         add_runner_arguments,
                                         add_vis_backend_argument,
                                         ends_distributed_runs,
                                         parse_runner_args)


def _resamples(text: str) -> int:
    """``--bootstrap``: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f'must be a number of resamples >= 1, got {text!r}')
    return value


def _seed(text: str) -> int:
    """``--bootstrap-seed``: an int >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be an int >= 0, got {text!r}')
    return value


def _level(text: str) -> float:
    """``--bootstrap-level``: in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f'must be in (0, 1), e.g. 0.95, got {text!r}')
    return value


def parse_args(argv=None):
    p = ToolArgumentParser(
        description='OOD evaluation of a segmentation checkpoint')
    add_evaluation_arguments(p)
    p.add_argument('--scorers', nargs='+',
                   help='scorer names (default: every scorer the model '
                   'supports); NAME:key=value,... sets parameters, e.g. '
                   'n_energy:eta=1.5 (reported under that text)')
    p.add_argument('--fit-on', choices=['train', 'val'],
                   help="the config's ID split the scorers fitted on ID "
                   'data (sml, react, dice, vim, mahalanobis, rmd, knn) are '
                   'fitted on (default: train), cached in the work dir')
    p.add_argument('--sml-stats', help='statistics file of the sml scorer '
                   '(default: fit them on --fit-on, cached in the work '
                   'dir)')
    p.add_argument('--sml-fit-on', default='train', choices=['train', 'val'],
                   help='the older name of --fit-on')
    add_vis_backend_argument(p, 'the results (scalars, curves)')
    p.add_argument('--tune', nargs='+', default=[],
                   metavar='PARAM[=V1,V2,...]',
                   help='grid-search these parameters (maximizing AP): '
                   'eta, delta, temperature, each alone (its default grid) '
                   'or with its own values, e.g. temperature=0.01,0.1,1')
    p.add_argument('--tune-on', help='dataset to tune on (default: first); '
                   'also the labelled reference set, not among --datasets, '
                   'on which maskomaly selects its queries')
    p.add_argument('--show-dir', help='directory for per-image heatmaps')
    p.add_argument('--show-num', type=int, default=10,
                   help='number of heatmaps per dataset')
    p.add_argument('--export-smiyc', help='directory for SMIYC submission '
                   'files (anomaly_p/<method>/<dataset>/<frame>.hdf5)')
    p.add_argument('--export-transform', default='rank',
                   choices=['rank', 'none'],
                   help='rank: map scores monotonically into [0, 1] before '
                   'the float16 cast, keeping their ranking (default); '
                   'none: cast the raw scores')
    p.add_argument('--component-threshold', default='best-f1',
                   metavar='best-f1|smiyc|VALUE|from:DATASET|tpr:RATE',
                   help="threshold of the component metrics: each "
                   "dataset's own exact best pixel-F1 threshold (default), "
                   "the SMIYC benchmark code's choice (its binned curve, "
                   "score > t: its numbers), a fixed value, the best-F1 "
                   'threshold of another dataset, or the threshold at a '
                   'pixel TPR')
    p.add_argument('--per-image', action='store_true',
                   help='also report AUROC / AP / FPR95 averaged over '
                   'images (and DIR/per_image.csv)')
    p.add_argument('--bootstrap', type=_resamples, metavar='N',
                   help='percentile bootstrap intervals of the pooled '
                   'AUROC / AP / FPR95, N resamples of the images (e.g. '
                   '1000)')
    p.add_argument('--bootstrap-seed', type=_seed, metavar='S',
                   help='seed of the resampling (default 0)')
    p.add_argument('--bootstrap-level', type=_level, metavar='L',
                   help='coverage of the intervals (default 0.95)')
    p.add_argument('--tta', action='store_true',
                   help='test-time augmentation')
    p.add_argument('--meta-classifier', help='meta-classifier file '
                   '(tools/meta_classify.py --save): also report its '
                   'scorer with the rejected segments removed')
    p.add_argument('--no-id-eval', action='store_true',
                   help="skip the mIoU of the config's own test set")
    p.add_argument('--open-set-iou', action='store_true',
                   help="also the ID mIoU with an OOD class for pixels "
                   "whose entropy is >= t, t = 0.05, 0.1, ..., 1 "
                   '(entropy-maximization Fig. 5), in the same ID pass')
    add_runner_arguments(p)
    args = parse_runner_args(p, argv)
    from mmseg_ood.engine.tuning import tune_values
    try:
        args.tune = tune_values(args.tune)  # {parameter: grid values}
    except ValueError as e:
        p.error(f'argument --tune: {e}')
    if args.open_set_iou and args.no_id_eval:
        p.error('--open-set-iou is computed in the ID pass, which '
                '--no-id-eval skips')
    for flag in ('seed', 'level'):
        if getattr(args, f'bootstrap_{flag}') is not None and \
                args.bootstrap is None:
            p.error(f'--bootstrap-{flag} needs --bootstrap N')
    return args


def _bootstrap(args):
    """The API's ``bootstrap`` dict of the flags (``None`` without
    ``--bootstrap``)."""
    if args.bootstrap is None:
        return None
    given = dict(seed=args.bootstrap_seed, level=args.bootstrap_level)
    return dict(samples=args.bootstrap,
                **{k: v for k, v in given.items() if v is not None})


def build_options(args):
    """The API's :class:`~mmseg_ood.apis.OODTestOptions` of the parsed
    flags."""
    from mmseg_ood.apis import OODTestOptions
    return OODTestOptions(
        datasets=args.datasets, scorers=args.scorers, tune=args.tune,
        tune_on=args.tune_on, show_dir=args.show_dir,
        show_num=args.show_num, export_smiyc=args.export_smiyc,
        export_transform=args.export_transform,
        component_threshold=args.component_threshold,
        per_image=args.per_image, bootstrap=_bootstrap(args), tta=args.tta,
        id_eval=not args.no_id_eval, open_set_iou=args.open_set_iou,
        sml_stats=args.sml_stats, sml_fit_on=args.sml_fit_on,
        fit_on=args.fit_on, vis_backends=args.vis_backends or (),
        meta_classifier=args.meta_classifier)


@tool_entry('ood_test')
@ends_distributed_runs
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.apis import ood_test
    return ood_test(args.config, args.checkpoint, build_options(args),
                    work_dir=args.work_dir, cfg_options=args.cfg_options,
                    launcher=args.launcher, unsafe_load=args.unsafe_load)


if __name__ == '__main__':
    main()
