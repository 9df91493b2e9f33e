"""Calibration and background IoU over training seeds: one work root per
seed, each holding ``robustness/robustness.json`` (``tools/robustness_test.py``
with the same models and cells) and ``background_iou/<model>/results.json``
(``tools/ood_test.py`` on whole-image OOD sets), as ``scripts/seed_study.sh``
writes them.

    python -m mmseg_ood.tools.analysis.seed_summary \
        ROOT [ROOT ...] [--out FILE.md]

Prints mean ± sample standard deviation (smallest-largest) over the roots:
clean and corrupted mIoU, ECE and non-distinctiveness (IBE eq. 4) per
model, and each model's pooled background IoU per whole-image set (IBE
Table 2). ECE and non-distinctiveness are fractions (x100 in the table).
"""
import os
import os.path as osp
import sys

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry


def parse_args(argv=None):
    p = ToolArgumentParser(
        description='Calibration and background IoU over training seeds')
    p.add_argument('roots', nargs='+', help='one work root per seed')
    p.add_argument('--out', help='also write the tables to this file')
    args = p.parse_args(argv)
    twice = sorted({r for r in args.roots if args.roots.count(r) > 1})
    if twice:
        p.error(f'ROOT {twice[0]!r} is given twice: each seed once')
    return args


def _missing(path: str) -> None:
    from mmseg_ood.errors import MissingInputError
    if not osp.isfile(path):
        raise MissingInputError(f'{path} not found: run the seed study '
                                '(scripts/seed_study.sh) for this root')


@tool_entry('seed_summary')
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.reports.results import load_results
    from mmseg_ood.reports.robustness import load_robustness_results
    from mmseg_ood.reports.seed_spread import (background_spreads,
                                               calibration_spreads,
                                               spread_rows_table)
    from mmseg_ood.utils.files import (check_output_dir, check_output_path,
                                       dump_text)
    paths = [osp.join(r, 'robustness', 'robustness.json') for r in args.roots]
    for path in paths:
        _missing(path)
    robustness = [load_robustness_results(path) for path in paths]
    models = robustness[0]['models']
    bg_paths = {m: [osp.join(r, 'background_iou', m, 'results.json')
                    for r in args.roots]
                for m in models
                if osp.isdir(osp.join(args.roots[0], 'background_iou', m))}
    inputs = paths + [p for ps in bg_paths.values() for p in ps]
    if args.out:
        folder = osp.dirname(osp.abspath(args.out))
        check_output_dir(folder, 'the folder of --out')
        os.makedirs(folder, exist_ok=True)
        check_output_path(args.out, inputs, '--out')
    parts = [spread_rows_table(calibration_spreads(robustness),
                               f'x100, {len(args.roots)} seeds')]
    for ps in bg_paths.values():
        for path in ps:
            _missing(path)
    bg = {m: [load_results(p) for p in ps] for m, ps in bg_paths.items()}
    if bg:
        parts.append(spread_rows_table(
            background_spreads(bg), 'background IoU, pooled %'))
    text = ('Mean ± sample standard deviation (smallest-largest) over the '
            'seeds.\n\n' + '\n\n'.join(parts))
    print(text)
    if args.out:
        dump_text(text + '\n', args.out, inputs, '--out')
    # on stderr: stdout is the tables alone (scripts redirect it)
    print(f'seed_summary: {len(args.roots)} seeds, {len(models)} '
          f'model(s), background IoU of {len(bg)}' +
          (f'; wrote {args.out}' if args.out else ''), file=sys.stderr)
    return text


if __name__ == '__main__':
    main()
