"""Proposal re-ranking (the SegNet/UOI paper's eq. 17 measurement).

    python -m mmseg_ood.tools.rerank_proposals CONFIG \
        --checkpoints NAME=CKPT [NAME=CKPT ...] --proposals CKPT \
        --work-dir DIR [--proposal-config CONFIG] [--num-candidates 30] \
        [--grid 13] [--background-index 0 | none] \
        [--background-penalty 0.02] [--max-images N] [--cfg-options ...]

(or ``python tools/rerank_proposals.py`` in a clone). For each val image
of CONFIG, the proposal model's output gives the candidates (its argmax
and relabellings of its least certain segments); each network picks one by
eq. 17. Writes DIR/reranking.json and DIR/reranking.md: each network's
argmax and re-ranked mIoU, the proposals' 1-best and oracle mIoU.
"""
import argparse

from mmengine.config import DictAction

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry


def _named_checkpoint(text):
    name, sep, path = text.partition('=')
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(
            f'expected NAME=CHECKPOINT, got {text!r}')
    return name, path


def _background(text):
    if text.lower() == 'none':
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected a class index or "none", got {text!r}') from None


def parse_args(argv=None):
    p = ToolArgumentParser(
        description='mIoU after re-ranking proposals (SegNet paper eq. 17)')
    p.add_argument('config', help="the networks' config (and val set)")
    p.add_argument('--checkpoints', nargs='+', required=True,
                   type=_named_checkpoint, metavar='NAME=CKPT',
                   help='the networks compared')
    p.add_argument('--proposals', required=True, metavar='CKPT',
                   help='the model whose output gives the candidates')
    p.add_argument('--proposal-config', help='its config (default CONFIG)')
    p.add_argument('--work-dir', required=True, help='output directory')
    p.add_argument('--num-candidates', type=int, default=30,
                   help='candidates per image (default 30)')
    p.add_argument('--grid', type=int, default=13,
                   help='cells per side of the soft segmentations '
                   '(default 13, the paper\'s)')
    p.add_argument('--background-index', type=_background, default=0,
                   help='class of the background penalty, or "none" '
                   '(default 0)')
    p.add_argument('--background-penalty', type=float, default=0.02,
                   help='its factor (default 0.02, the paper\'s)')
    p.add_argument('--max-images', type=int, help='only the first N images')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='overrides of the configs')
    args = p.parse_args(argv)
    names = [n for n, _ in args.checkpoints]
    if len(set(names)) != len(names):
        p.error(f'--checkpoints names must differ, got {names}')
    return args


@tool_entry('rerank_proposals')
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.apis.rerank_proposals import (rerank_proposals,
                                                 reranking_markdown)
    result = rerank_proposals(
        args.config, dict(args.checkpoints), args.proposals,
        proposal_config=args.proposal_config,
        num_candidates=args.num_candidates, grid=args.grid,
        background_index=args.background_index,
        background_penalty=args.background_penalty,
        max_images=args.max_images, cfg_options=args.cfg_options,
        out_dir=args.work_dir)
    print(reranking_markdown(result), end='')
    return result


if __name__ == '__main__':
    main()
