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
import argparse
import json
import os
import os.path as osp


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Calibration and background IoU over training seeds')
    p.add_argument('roots', nargs='+', help='one work root per seed')
    p.add_argument('--out', help='also write the tables to this file')
    return p.parse_args(argv)


def _read(path: str) -> dict:
    if not osp.isfile(path):
        raise SystemExit(f'seed_summary: {path} not found')
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise SystemExit(f'seed_summary: {path} is not JSON: {e}')


def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.reports.seed_spread import (background_spreads,
                                               calibration_spreads,
                                               spread_rows_table)
    from mmseg_ood.utils.files import dump_text
    parts = []
    try:
        robustness = [_read(osp.join(r, 'robustness', 'robustness.json'))
                      for r in args.roots]
        parts.append(spread_rows_table(
            calibration_spreads(robustness),
            f'x100, {len(args.roots)} seeds'))
        models = robustness[0].get('models', [])
        bg = {m: [_read(osp.join(r, 'background_iou', m, 'results.json'))
                  for r in args.roots]
              for m in models
              if osp.isdir(osp.join(args.roots[0], 'background_iou', m))}
        if bg:
            parts.append(spread_rows_table(
                background_spreads(bg), 'background IoU, pooled %'))
    except ValueError as e:
        raise SystemExit(f'seed_summary: {e}')
    text = ('Mean ± sample standard deviation (smallest-largest) over the '
            'seeds.\n\n' + '\n\n'.join(parts))
    print(text)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        dump_text(text + '\n', args.out)


if __name__ == '__main__':
    main()
