"""Convert a checkpoint between a plain decode head and IBE / SCrIBE.

    python -m mmseg_ood.tools.convert_checkpoint SRC.pth \
        --to ibe|scribe|plain --out DST.pth [--background-index 0] \
        [--bias keep|relative] [--config TARGET_CONFIG \
        [--cfg-options ...] [--no-class-check]] [--unsafe-load]

(or ``python tools/convert_checkpoint.py`` in a clone). With ``--config``
the result is checked to load into the target model (no missing,
unexpected or mis-shaped keys) and the checkpoint's class names, if its
``meta`` records them, to be the config's dataset classes. ``--out`` must
not be the source (by any name, links included); it is written
atomically. Fine-tune from it with ``load_from``.
"""

from mmengine.config import DictAction

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry


def parse_args(argv=None):
    p = ToolArgumentParser(
        description='Map a plain head onto IBE / SCrIBE (or back)')
    p.add_argument('src', help='the source checkpoint')
    p.add_argument('--to', required=True, choices=['ibe', 'scribe', 'plain'],
                   help='the target head')
    p.add_argument('--out', required=True, help='the converted checkpoint')
    p.add_argument('--background-index', type=int, default=0,
                   help='the background class (default 0)')
    p.add_argument('--bias', default='keep', choices=['keep', 'relative'],
                   help='keep: foreground rows as they are (foreground '
                   'logits unchanged); relative: minus the background row '
                   '(logits relative to the background)')
    p.add_argument('--config', help="the target's config: check that the "
                   'result loads into it')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='overrides of --config')
    p.add_argument('--no-class-check', action='store_true',
                   help="with --config: do not refuse a config whose "
                   "dataset classes differ from the names in the "
                   "checkpoint's meta")
    p.add_argument('--unsafe-load', action='store_true',
                   help='load the source with full pickle (trusted files '
                   'only)')
    return p.parse_args(argv)


@tool_entry('convert_checkpoint')
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.apis.convert_checkpoint import convert_checkpoint
    report = convert_checkpoint(
        args.src, args.to, args.out,
        background_index=args.background_index, bias=args.bias,
        config=args.config, cfg_options=args.cfg_options,
        unsafe_load=args.unsafe_load,
        check_classes=not args.no_class_check)
    checked = (f'; loads into {report["checked"]} with no missing or '
               'unexpected keys' if report['checked'] else '')
    print(f'[convert_checkpoint] {args.src} -> {report["out"]}: '
          f'{report["head"]} as {report["to"]} (background index '
          f'{report["background_index"]}, bias {report["bias"]})' + checked)
    return report


if __name__ == '__main__':
    main()
