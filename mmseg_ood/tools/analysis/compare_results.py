"""One table over several tools/ood_test.py runs (ID mIoU, AUROC / AP /
FPR95 per scorer), e.g. the training-time variants of
``scripts/compare_ood_training.sh``; with
``--segments``, the entropy-maximization paper's Tables 2 and 3 over
several tools/meta_classify.py runs.

    python -m mmseg_ood.tools.analysis.compare_results \
        WORK_ROOT NAME [NAME ...]
        [--dataset synthetic_objects_ood] [--scorers msp entropy ...]
        [--segments] [--out FILE.md]
        [--violins FILE.png [--violin-scorer entropy]] [--open-set FILE.png]
        [--seed-roots ROOT [ROOT ...]]

Reads WORK_ROOT/NAME/ood/results.json (``--segments``:
WORK_ROOT/NAME/meta/meta_results.json) for each NAME. ``--violins``: one
score's ID and OOD distributions on ``--dataset``, one pair of violins per
model, e.g. before and after fine-tuning (entropy-maximization Fig. 3),
from WORK_ROOT/NAME/ood/distributions/<dataset>.json; the table then lists
their quartiles. ``--open-set``: each model's ID mIoU against the entropy
threshold (entropy-maximization Fig. 5; runs with ``--open-set-iou``).
``--seed-roots``: the same NAMEs trained with other seeds under other work
roots; the table is then each metric's mean ± sample standard deviation
(smallest-largest) over WORK_ROOT and the seed roots
(:mod:`mmseg_ood.reports.seed_spread`).
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
    parser.add_argument('--violins', metavar='FILE.png',
                        help='violins of --violin-scorer on the ID and OOD '
                        'pixels of --dataset, per model (entropy-'
                        'maximization Fig. 3)')
    parser.add_argument('--violin-scorer', default='entropy',
                        help='the score of --violins (default: entropy)')
    parser.add_argument('--open-set', metavar='FILE.png',
                        help='ID mIoU against the entropy threshold, per '
                        'model (entropy-maximization Fig. 5; runs made '
                        'with ood_test --open-set-iou)')
    parser.add_argument('--seed-roots', nargs='+', metavar='ROOT',
                        help='the same models trained with other seeds: '
                        'report mean ± spread over all roots')
    args = parser.parse_args(argv)
    if args.seed_roots and (args.segments or args.violins or
                            args.open_set):
        parser.error('--seed-roots summarizes ood_test runs only (not with '
                     '--segments, --violins or --open-set)')
    if args.segments and (args.violins or args.open_set):
        parser.error('--violins and --open-set compare ood_test runs, not '
                     '--segments (meta_classify) runs')
    return args


def _violins(args) -> str:
    """Write ``--violins``; return the quartile table (Markdown)."""
    from mmseg_ood.evaluation.accumulators.score_distribution import \
        load_distributions
    from mmseg_ood.reports.figures import plot_distribution_violins
    runs = {}
    for name in args.names:
        path = osp.join(args.work_root, name, 'ood', 'distributions',
                        f'{args.dataset}.json')
        if not osp.isfile(path):
            raise SystemExit(f'{path} not found: run tools/ood_test.py for '
                             f'{name!r} on {args.dataset!r} (its runs '
                             'write distributions/<dataset>.json)')
        try:
            dists = load_distributions(path)
        except ValueError as e:
            raise SystemExit(str(e)) from None
        if args.violin_scorer not in dists:
            raise SystemExit(f'{path}: no scorer {args.violin_scorer!r} '
                             f'(has {sorted(dists)})')
        runs[name] = dists[args.violin_scorer]
    plot_distribution_violins(args.violins, runs, args.violin_scorer,
                              args.dataset)
    lines = [f'{args.violin_scorer} on {args.dataset} (Fig. 3: '
             f'{args.violins})', '',
             '| model | pixels | n | q25 | median | q75 | best-accuracy t |',
             '|---|---|---|---|---|---|---|']
    for name, d in runs.items():
        t = d.best_accuracy_threshold()['threshold']
        for which in ('id', 'ood'):
            q = d.summary(which, (0.25, 0.5, 0.75))
            lines.append(f'| {name} | {which.upper()} | {q["n"]} | '
                         f'{q["q0.25"]:.4g} | {q["q0.5"]:.4g} | '
                         f'{q["q0.75"]:.4g} | {t:.4g} |')
    return '\n'.join(lines)


def _open_set(args, runs) -> str:
    """Write ``--open-set``; return a line naming it."""
    from mmseg_ood.reports.figures import plot_open_set_miou
    curves = {}
    for name, payload in runs.items():
        curve = payload.get('open_set_iou')
        if not curve:
            raise SystemExit(f'{name!r} has no open_set_iou in its '
                             'results.json: rerun tools/ood_test.py with '
                             '--open-set-iou')
        curves[name] = curve
    plot_open_set_miou(args.open_set, curves)
    return f'Fig. 5 (open-set mIoU): {args.open_set}'


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
        from mmseg_ood.reports.segments import (plot_detection_errors,
                                                segment_tables_markdown)
        runs = _load(args.work_root, args.names,
                     ('meta', 'meta_results.json'), 'tools/meta_classify.py')
        table = segment_tables_markdown(runs, args.dataset)
        if args.out:
            png = osp.splitext(args.out)[0] + '.png'
            plot_detection_errors(png, runs, args.dataset)
            table += f'\nFig. 7: {png}\n'
    else:
        from mmseg_ood.reports.results import comparison_table
        runs = _load(args.work_root, args.names, ('ood', 'results.json'),
                     'tools/ood_test.py')
        if args.seed_roots:
            from mmseg_ood.reports.seed_spread import seed_spreads, seed_table
            per_seed = [runs] + [
                _load(root, args.names, ('ood', 'results.json'),
                      'tools/ood_test.py') for root in args.seed_roots]
            try:
                spreads = seed_spreads(per_seed, args.dataset, args.scorers)
            except ValueError as e:
                raise SystemExit(f'compare_results: {e}')
            table = seed_table(spreads, args.scorers)
        else:
            table = comparison_table(runs, args.dataset,
                                     tuple(args.scorers))
        if args.violins:
            table += '\n\n' + _violins(args)
        if args.open_set:
            table += '\n\n' + _open_set(args, runs)
    print(table)
    if args.out:
        from mmseg_ood.utils.files import dump_text
        dump_text(table + '\n', args.out)


if __name__ == '__main__':
    main()
