"""One table over several tools/ood_test.py runs (ID mIoU, AUROC / AP /
FPR95 per scorer), e.g. the training-time variants of issue 6; with
``--segments``, the entropy-maximization paper's Tables 2 and 3 over
several tools/meta_classify.py runs.

    python -m mmseg_ood.tools.compare_results WORK_ROOT NAME [NAME ...]
        [--dataset synthetic_objects_ood] [--scorers msp entropy ...]
        [--segments] [--out FILE.md]

Reads WORK_ROOT/NAME/ood/results.json (``--segments``:
WORK_ROOT/NAME/meta/meta_results.json) for each NAME.
"""
import argparse
import json
import os.path as osp


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Compare the OOD results of several models')
    parser.add_argument('work_root', help='directory holding one work dir '
                        'per model')
    parser.add_argument('names', nargs='+', help='model work-dir names')
    parser.add_argument('--dataset', default='synthetic_objects_ood')
    parser.add_argument('--scorers', nargs='+', default=[
        'msp', 'entropy', 'max_logit', 'energy', 'background'
    ])
    parser.add_argument('--segments', action='store_true',
                        help='compare meta_classify runs (Tables 2 and 3, '
                        'Fig. 7 next to --out)')
    parser.add_argument('--out', help='also write the table to this file')
    return parser.parse_args(argv)


def _load(work_root, names, sub, tool):
    runs = {}
    for name in names:
        path = osp.join(work_root, name, *sub)
        if not osp.isfile(path):
            raise SystemExit(f'{path} not found: run {tool} for {name!r} '
                             'first')
        with open(path) as f:
            runs[name] = json.load(f)
    return runs


def main(argv=None):
    args = parse_args(argv)
    if args.segments:
        from mmseg_ood.evaluation.segment_report import (
            plot_detection_errors, segment_tables_markdown)
        runs = _load(args.work_root, args.names,
                     ('meta', 'meta_results.json'), 'tools/meta_classify.py')
        table = segment_tables_markdown(runs, args.dataset)
        if args.out:
            png = osp.splitext(args.out)[0] + '.png'
            plot_detection_errors(png, runs, args.dataset)
            table += f'\nFig. 7: {png}\n'
    else:
        from mmseg_ood.evaluation.report import comparison_table
        runs = _load(args.work_root, args.names, ('ood', 'results.json'),
                     'tools/ood_test.py')
        table = comparison_table(runs, args.dataset, tuple(args.scorers))
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    main()
