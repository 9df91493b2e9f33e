"""Generate the synthetic OOD benchmark (deterministic from --seed).

    python -m mmseg_ood.tools.dataset_converters.make_synthetic \
        OUT_DIR [--seed 0]
        [--variants street objects] [--num-train N] [--num-val N]
        [--num-ood N] [--num-image-ood N] [--num-proxy N] [--overwrite]

See mmseg_ood/synthetic/benchmark.py for the layout it writes.
"""
import time

from mmseg_ood.tools.entry import ToolArgumentParser, tool_entry


def parse_args(argv=None):
    parser = ToolArgumentParser(
        description='Generate the synthetic OOD benchmark')
    parser.add_argument('out_dir', help='output directory')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--variants', nargs='+',
                        default=['street', 'objects'],
                        choices=['street', 'objects'])
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--num-ood', type=int, default=50)
    parser.add_argument('--num-image-ood', type=int, default=20)
    parser.add_argument('--num-proxy', type=int, default=100,
                        help='outlier-proxy images (for OOD training)')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate even if a matching copy exists')
    return parser.parse_args(argv)


@tool_entry('make_synthetic')
def main(argv=None):
    args = parse_args(argv)
    from mmseg_ood.synthetic import make_synthetic_benchmark
    t0 = time.time()
    roots = make_synthetic_benchmark(
        args.out_dir, seed=args.seed, variants=args.variants,
        overwrite=args.overwrite, num_train=args.num_train,
        num_val=args.num_val, num_ood=args.num_ood,
        num_image_ood=args.num_image_ood, num_proxy=args.num_proxy)
    for variant, root in roots.items():
        print(f'{variant}: {root}')
    print(f'done in {time.time() - t0:.1f} s')


if __name__ == '__main__':
    main()
