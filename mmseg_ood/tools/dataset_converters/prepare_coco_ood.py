"""Build the COCO outlier proxy (entropy-maximization paper, sec. 5).

    python -m mmseg_ood.tools.dataset_converters.prepare_coco_ood \
        COCO_ROOT OUT_DIR
        [--split train2017]
        [--id-taxonomy cityscapes|voc|none] [--exclude NAME ...]
        [--min-size 480] [--link] [--limit N]

Keeps COCO images with no instance of a category of the ID taxonomy and
with height and width >= --min-size; writes OUT_DIR/images (copies or
symlinks) and OUT_DIR/annotations/*.png with 254 on every instance and 255
elsewhere, for ``OutlierProxyDataset``. See
mmseg_ood/datasets/coco_ood_proxy.py for how this differs from the
authors' script.
"""
from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry


def parse_args(argv=None):
    parser = ToolArgumentParser(
        description='Build the COCO outlier proxy for entropy maximization')
    parser.add_argument('coco_root', help='COCO root (annotations/, '
                        'train2017/)')
    parser.add_argument('out_dir', help='output root of the proxy')
    parser.add_argument('--split', default='train2017')
    parser.add_argument('--id-taxonomy', default='cityscapes',
                        choices=['cityscapes', 'voc', 'none'],
                        help='drop images with instances of these classes')
    parser.add_argument('--exclude', nargs='*', default=[],
                        help='further COCO category names to drop')
    parser.add_argument('--min-size', type=int, default=480)
    parser.add_argument('--link', action='store_true',
                        help='symlink images instead of copying them')
    parser.add_argument('--limit', type=int, default=None,
                        help='stop after N kept images')
    return parser.parse_args(argv)


@tool_entry('prepare_coco_ood')
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.datasets.coco_ood_proxy import prepare_coco_ood_proxy
    summary = prepare_coco_ood_proxy(
        args.coco_root, args.out_dir, split=args.split,
        id_taxonomy=args.id_taxonomy, exclude=args.exclude,
        min_size=args.min_size, link=args.link, limit=args.limit)
    print(f"kept {summary['images']} images; dropped "
          f"{summary['dropped_for_category']} for their categories and "
          f"{summary['dropped_for_size']} smaller than {args.min_size} px")


if __name__ == '__main__':
    main()
