"""Score a checkpoint on OOD datasets with every scorer in one pass.

    python -m mmseg_ood.tools.ood_test CONFIG CHECKPOINT --work-dir DIR \
        [--datasets road_anomaly21 road_obstacle21 fs_lost_and_found ...] \
        [--scorers msp energy n_energy sml ...] \
        [--sml-stats FILE | --sml-fit-on train|val] \
        [--tune eta delta temperature --tune-on DATASET] \
        [--show-dir DIR --show-num N] [--export-smiyc DIR] \
        [--export-transform rank|none] [--tta] \
        [--component-threshold best-f1|VALUE|from:DATASET|tpr:RATE] \
        [--per-image] [--meta-classifier meta.json] \
        [--cfg-options ...] [--launcher none|pytorch|slurm] [--unsafe-load]

(or ``python tools/ood_test.py`` in a clone). CONFIG is a file or
``mmseg_ood::<path>`` for a config shipped with the package. Writes
DIR/results.json, results.csv, results.md and DIR/curves/*.png. Dataset
names are the presets shipped in configs/_base_/datasets/ood/ (or paths to
preset files); their data roots come from environment variables named in
each preset. ``--scorers sml`` fits SML's statistics on the config's
training set (``--sml-fit-on val`` for the validation set), caches them in
DIR and reuses them, or loads them from ``--sml-stats FILE``.
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
"""
import argparse

from mmseg_ood.tools.runner_args import (add_evaluation_arguments,
                                        add_runner_arguments,
                                        ends_distributed_runs,
                                        parse_runner_args)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='OOD evaluation of a segmentation checkpoint')
    add_evaluation_arguments(p)
    p.add_argument('--scorers', nargs='+',
                   help='scorer names (default: every scorer the model '
                   'supports)')
    p.add_argument('--sml-stats', help='statistics file of the sml scorer '
                   '(default: fit them on --sml-fit-on, cached in the work '
                   'dir)')
    p.add_argument('--sml-fit-on', default='train', choices=['train', 'val'],
                   help="the config's ID split the sml statistics are "
                   'fitted on')
    p.add_argument('--tune', nargs='+', default=[],
                   choices=['eta', 'delta', 'temperature'],
                   help='grid-search these parameters (maximizing AP)')
    p.add_argument('--tune-on', help='dataset to tune on (default: first)')
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
                   metavar='best-f1|VALUE|from:DATASET|tpr:RATE',
                   help="threshold of the component metrics: each "
                   "dataset's own best pixel-F1 threshold (default, as "
                   'SMIYC), a fixed value, the best-F1 threshold of another '
                   'dataset, or the threshold at a pixel TPR')
    p.add_argument('--per-image', action='store_true',
                   help='also report AUROC / AP / FPR95 averaged over '
                   'images (and DIR/per_image.csv)')
    p.add_argument('--tta', action='store_true',
                   help='test-time augmentation')
    p.add_argument('--meta-classifier', help='meta-classifier file '
                   '(tools/meta_classify.py --save): also report its '
                   'scorer with the rejected segments removed')
    p.add_argument('--no-id-eval', action='store_true',
                   help="skip the mIoU of the config's own test set")
    add_runner_arguments(p)
    return parse_runner_args(p, argv)


@ends_distributed_runs
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.apis import ood_test
    return ood_test(
        args.config, args.checkpoint, work_dir=args.work_dir,
        datasets=args.datasets, scorers=args.scorers, tune=args.tune,
        tune_on=args.tune_on, show_dir=args.show_dir,
        show_num=args.show_num, export_smiyc=args.export_smiyc,
        export_transform=args.export_transform,
        component_threshold=args.component_threshold,
        per_image=args.per_image,
        tta=args.tta, id_eval=not args.no_id_eval,
        sml_stats=args.sml_stats, sml_fit_on=args.sml_fit_on,
        meta_classifier=args.meta_classifier,
        cfg_options=args.cfg_options, launcher=args.launcher,
        unsafe_load=args.unsafe_load)


if __name__ == '__main__':
    main()
