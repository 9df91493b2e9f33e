"""One table over several tools/ood_test.py runs (ID mIoU, AUROC / AP /
FPR95 per scorer), e.g. the training-time variants of issue 6.

    python -m mmseg_ood.tools.compare_results WORK_ROOT NAME [NAME ...]
        [--dataset synthetic_objects_ood] [--scorers msp entropy ...]
        [--out FILE.md]

Reads WORK_ROOT/NAME/ood/results.json for each NAME.
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
    parser.add_argument('--out', help='also write the table to this file')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.evaluation.report import comparison_table
    runs = {}
    for name in args.names:
        path = osp.join(args.work_root, name, 'ood', 'results.json')
        if not osp.isfile(path):
            raise SystemExit(f'{path} not found: run tools/ood_test.py for '
                             f'{name!r} first')
        with open(path) as f:
            runs[name] = json.load(f)
    table = comparison_table(runs, args.dataset, tuple(args.scorers))
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    main()
