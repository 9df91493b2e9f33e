"""One table over several tools/ood_test.py runs (ID mIoU, AUROC / AP /
FPR95 per scorer), e.g. the training-time variants of
``scripts/compare_ood_training.sh``; with
``--segments``, the entropy-maximization paper's Tables 2 and 3 over
several tools/meta_classify.py runs.

    python -m mmseg_ood.tools.analysis.compare_results \
        WORK_ROOT NAME [NAME ...]
        [--dataset NAME] [--scorers msp entropy ...]
        [--segments] [--out FILE.md] [--report FILE.html]
        [--violins FILE.png [--violin-scorer entropy]] [--open-set FILE.png]
        [--seed-roots ROOT [ROOT ...]]

Reads WORK_ROOT/NAME/ood/results.json (``--segments``:
WORK_ROOT/NAME/meta/meta_results.json) for each NAME, and compares them on
``--dataset``, or without it on every dataset all the runs have results
on (a table each). ``--violins``: one
score's ID and OOD distributions on ``--dataset``, one pair of violins per
model, e.g. before and after fine-tuning (entropy-maximization Fig. 3),
from WORK_ROOT/NAME/ood/distributions/<dataset>.json; the table then lists
their quartiles. ``--open-set``: each model's ID mIoU against the entropy
threshold (entropy-maximization Fig. 5; runs with ``--open-set-iou``).
``--seed-roots``: the same NAMEs trained with other seeds under other work
roots; the table is then each metric's mean ± sample standard deviation
(smallest-largest) over WORK_ROOT and the seed roots
(:mod:`mmseg_ood.reports.seed_spread`). ``--report``: the runs side by
side in one self-contained HTML file
(:mod:`mmseg_ood.reports.html_report`).
"""
import os.path as osp
import sys

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry


def parse_args(argv=None):
    parser = ToolArgumentParser(
        description='Compare the OOD results of several models')
    parser.add_argument('work_root', help='directory holding one work dir '
                        'per model')
    parser.add_argument('names', nargs='+', help='model work-dir names')
    parser.add_argument('--dataset', default=None,
                        help='the OOD dataset to compare (default: every '
                        'dataset all the runs have results on)')
    parser.add_argument('--scorers', nargs='+', default=[
        'msp', 'entropy', 'max_logit', 'energy', 'background'
    ])
    parser.add_argument('--columns', nargs='+', metavar='METRIC',
                        default=['auroc', 'ap', 'fpr95'],
                        choices=['auroc', 'ap', 'fpr95', 'siou', 'ppv',
                                 'mean_f1'],
                        help='metric columns (default: auroc ap fpr95; also '
                        'the component metrics siou ppv mean_f1)')
    parser.add_argument('--segments', action='store_true',
                        help='compare meta_classify runs (Tables 2 and 3, '
                        'Fig. 7 next to --out)')
    parser.add_argument('--out', help='also write the table to this file')
    parser.add_argument('--report', metavar='FILE.html',
                        help='also write a self-contained HTML report of '
                        'the runs side by side (settings, tables with the '
                        'best value marked, each run\'s ROC / PR curves)')
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
    from mmseg_ood.tools.runner_args import add_vis_backend_argument
    add_vis_backend_argument(parser, 'the compared scalars and figures '
                             '(under the folder of --out, else WORK_ROOT)')
    args = parser.parse_args(argv)
    if args.seed_roots and (args.segments or args.violins or
                            args.open_set or args.report):
        parser.error('--seed-roots summarizes ood_test runs only (not with '
                     '--segments, --violins, --open-set or --report)')
    if args.segments and args.report:
        parser.error('--report compares ood_test runs, not --segments '
                     '(meta_classify) runs')
    if args.segments and (args.violins or args.open_set):
        parser.error('--violins and --open-set compare ood_test runs, not '
                     '--segments (meta_classify) runs')
    if args.segments and args.columns != ['auroc', 'ap', 'fpr95']:
        parser.error('--columns selects ood_test metrics, not --segments '
                     '(meta_classify) ones')
    twice = sorted({c for c in args.columns if args.columns.count(c) > 1})
    if twice:
        parser.error(f'--columns names {twice[0]!r} twice')
    twice = sorted({n for n in args.names if args.names.count(n) > 1})
    if twice:
        parser.error(f'NAME {twice[0]!r} is given twice')
    return args


def _violins(args, dataset: str) -> str:
    """Write ``--violins``; return the quartile table (Markdown)."""
    from mmseg_ood.errors import InvalidValueError, MissingInputError
    from mmseg_ood.evaluation.accumulators.score_distribution import \
        load_distributions
    from mmseg_ood.reports.figures import plot_distribution_violins
    from mmseg_ood.reports.results import md_cell
    from mmseg_ood.utils.files import load_json
    runs = {}
    for name in args.names:
        path = osp.join(args.work_root, name, 'ood', 'distributions',
                        f'{dataset}.json')
        if not osp.isfile(path):
            raise MissingInputError(
                f'{path} not found: run tools/ood_test.py for {name!r} on '
                f'{dataset!r} (its runs write distributions/<dataset>.json)')
        load_json(path, 'distributions file')  # named errors for bad JSON
        dists = load_distributions(path)
        if args.violin_scorer not in dists:
            raise InvalidValueError(
                f'{path}: no scorer {args.violin_scorer!r} (has '
                f'{sorted(dists)}); choose one with --violin-scorer')
        runs[name] = dists[args.violin_scorer]
    plot_distribution_violins(args.violins, runs, args.violin_scorer,
                              dataset)
    lines = [f'{args.violin_scorer} on {dataset} (Fig. 3: '
             f'{args.violins})', '',
             '| model | pixels | n | q25 | median | q75 | best-accuracy t |',
             '|---|---|---|---|---|---|---|']
    for name, d in runs.items():
        t = d.best_accuracy_threshold()['threshold']
        for which in ('id', 'ood'):
            q = d.summary(which, (0.25, 0.5, 0.75))
            lines.append(f'| {md_cell(name)} | {which.upper()} | {q["n"]} | '
                         f'{q["q0.25"]:.4g} | {q["q0.5"]:.4g} | '
                         f'{q["q0.75"]:.4g} | {t:.4g} |')
    return '\n'.join(lines)


def _open_set(args, runs) -> str:
    """Write ``--open-set``; return a line naming it."""
    from mmseg_ood.errors import InvalidValueError
    from mmseg_ood.reports.figures import plot_open_set_miou
    curves = {}
    for name, payload in runs.items():
        curve = payload.get('open_set_iou')
        if not curve:
            raise InvalidValueError(
                f'{name!r} has no open_set_iou in its results.json: rerun '
                'tools/ood_test.py with --open-set-iou')
        curves[name] = curve
    plot_open_set_miou(args.open_set, curves)
    return f'Fig. 5 (open-set mIoU): {args.open_set}'


def _load(work_root, names, sub, tool, read, files):
    """``{name: payload}`` of ``WORK_ROOT/NAME/<sub>`` read with ``read``
    (named errors for a missing or damaged file); each path goes to
    ``files[(work_root, name)]``."""
    from mmseg_ood.errors import MissingInputError
    if not osp.isdir(work_root):
        kind = 'is a file' if osp.exists(work_root) else 'does not exist'
        raise MissingInputError(f'work root {work_root} {kind}: give the '
                                'folder holding one work dir per model')
    runs = {}
    for name in names:
        path = osp.join(work_root, name, *sub)
        if not osp.isfile(path):
            raise MissingInputError(f'{path} not found: run {tool} for '
                                    f'{name!r} first')
        runs[name] = read(path)
        files[(work_root, name)] = path
    return runs


def _per_dataset(datasets, make) -> str:
    """``make(dataset)`` for each dataset, headed by its name when there
    are several."""
    parts = [make(d) for d in datasets]
    if len(parts) == 1:
        return parts[0]
    return '\n\n'.join(f'**{d}**\n\n{t}' for d, t in zip(datasets, parts))


def _datasets(args, seeds, files):
    """The datasets to compare: ``--dataset`` (checked in every run), or
    those every run of every root has."""
    from mmseg_ood.reports.results import check_dataset, results_datasets
    every = {(root, name): payload for root, runs in seeds
             for name, payload in runs.items()}
    labels = {f'{name} ({root})' if len(seeds) > 1 else name: payload
              for (root, name), payload in every.items()}
    paths = {f'{name} ({root})' if len(seeds) > 1 else name: files[
        (root, name)] for (root, name) in every}
    if args.dataset is not None:
        check_dataset(labels, args.dataset, paths)
        return [args.dataset]
    return results_datasets(labels)


def _figure_paths(args, datasets):
    """Fig. 7 files of ``--segments --out``: one next to ``--out``, or one
    per dataset."""
    if not (args.segments and args.out):
        return {}
    stem = osp.splitext(args.out)[0]
    if len(datasets) == 1:
        return {datasets[0]: stem + '.png'}
    return {d: f'{stem}_{d}.png' for d in datasets}


@tool_entry('compare_results')
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.utils.files import check_output_path, dump_text
    files = {}
    if args.segments:
        from mmseg_ood.reports.segments import (load_meta_results,
                                                plot_detection_errors,
                                                segment_tables_markdown)
        runs = _load(args.work_root, args.names,
                     ('meta', 'meta_results.json'), 'tools/meta_classify.py',
                     load_meta_results, files)
        seeds = [(args.work_root, runs)]
    else:
        from mmseg_ood.reports.results import comparison_table, load_results
        runs = _load(args.work_root, args.names, ('ood', 'results.json'),
                     'tools/ood_test.py', load_results, files)
        seeds = [(args.work_root, runs)] + [
            (root, _load(root, args.names, ('ood', 'results.json'),
                         'tools/ood_test.py', load_results, files))
            for root in args.seed_roots or ()]
    datasets = _datasets(args, seeds, files)
    figures = _figure_paths(args, datasets)
    # every output checked before any is written: none is an input, a
    # folder, or in a folder that does not exist
    inputs = list(files.values())
    outputs = [(args.out, '--out'), (args.violins, '--violins'),
               (args.open_set, '--open-set'), (args.report, '--report')] + [
                   (p, 'Fig. 7 (next to --out)') for p in figures.values()]
    for path, what in outputs:
        if path:
            check_output_path(path, inputs, what)
    written = []
    if args.segments:
        table = _per_dataset(datasets,
                             lambda d: segment_tables_markdown(runs, d))
        for d, png in figures.items():
            plot_detection_errors(png, runs, d)
            table += f'\nFig. 7 ({d}): {png}\n'
            written.append(png)
    elif args.seed_roots:
        from mmseg_ood.reports.seed_spread import seed_spreads, seed_table
        per_seed = [r for _, r in seeds]
        table = _per_dataset(datasets, lambda d: seed_table(
            seed_spreads(per_seed, d, args.scorers, args.columns),
            args.scorers, args.columns))
    else:
        table = _per_dataset(datasets, lambda d: comparison_table(
            runs, d, tuple(args.scorers), tuple(args.columns)))
        if args.violins:
            table += '\n\n' + _violins(args, datasets[0])
            written.append(args.violins)
        if args.open_set:
            table += '\n\n' + _open_set(args, runs)
            written.append(args.open_set)
        if args.report:
            from mmseg_ood.reports.html_report import write_comparison_report
            write_comparison_report(
                args.report, runs, {n: osp.dirname(files[(args.work_root, n)])
                                    for n in runs}, datasets, args.scorers,
                args.columns, inputs)
            written.append(args.report)
    print(table)
    if args.out:
        dump_text(table + '\n', args.out, inputs, '--out')
        written.insert(0, args.out)
    seeds_text = f' over {len(seeds)} seed roots' if len(seeds) > 1 else ''
    # on stderr: stdout is the table alone (scripts redirect it to a file)
    print(f'compare_results: {len(runs)} run(s){seeds_text} on '
          f'{", ".join(datasets)}' +
          (f'; wrote {", ".join(written)}' if written else ''),
          file=sys.stderr)
    if args.vis_backends:
        from mmseg_ood.engine.tracking import track_comparison
        track_comparison(args.vis_backends, osp.dirname(
            osp.abspath(args.out)) if args.out else args.work_root, runs,
            args.segments, written)
    return table


if __name__ == '__main__':
    main()
