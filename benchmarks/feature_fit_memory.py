"""Peak memory of the feature-statistics fit against the number of ID
reference pixels: bounded, unlike keeping every embedding.

:class:`~mmseg_ood.scorers.FeatureStatistics` (class moments, activation
histogram, embedding bank: what ``react dice vim mahalanobis rmd knn`` need
together) takes "images" of random ReLU-like embeddings, one at a time, as
the fitting pass feeds it. Python's ``tracemalloc`` (which sees numpy's
allocations) gives the peak during the fit and the size of the state; the
last column is what a fit that keeps every embedding (as pytorch-ood's
``fit`` concatenates them) would hold, ``P D`` float32.

    python benchmarks/feature_fit_memory.py [--dim 256] [--classes 19]
        [--image-pixels 32768] [--images 1 4 16 64] [--bank-size 10000]

Defaults: D = 256 (the channels of DeepLabV3+'s head), 19 classes, and
128 x 256 head pixels per image (a 1024 x 2048 Cityscapes image at the
head's stride 8).
"""
import argparse
import time
import tracemalloc

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dim', type=int, default=256)
    p.add_argument('--classes', type=int, default=19)
    p.add_argument('--image-pixels', type=int, default=128 * 256)
    p.add_argument('--images', type=int, nargs='+', default=[1, 4, 16, 64])
    p.add_argument('--bank-size', type=int, default=10000)
    return p.parse_args()


def fit(num_images, args):
    """Peak and final traced bytes of one fit over ``num_images``."""
    from mmseg_ood.scorers import FeatureStatistics
    rng = np.random.default_rng(0)
    spec = dict(moments=True, histogram=True, bank_size=args.bank_size)
    tracemalloc.start()
    stats = FeatureStatistics(spec, args.classes, args.dim)
    start = time.perf_counter()
    chunk_peak = 0
    for _ in range(num_images):
        # the embeddings of one image arrive from the model (not counted:
        # the forward pass holds them anyway)
        tracemalloc.stop()
        z = np.maximum(rng.normal(0, 1, (args.image_pixels, args.dim)),
                       0).astype(np.float32)
        y = rng.integers(0, args.classes, args.image_pixels)
        tracemalloc.start()
        tracemalloc.reset_peak()
        stats.update(z, y)
        chunk_peak = max(chunk_peak, tracemalloc.get_traced_memory()[1])
    seconds = time.perf_counter() - start
    state = sum(v.nbytes for v in stats.state_dict().values()
                if isinstance(v, np.ndarray))
    tracemalloc.stop()
    return chunk_peak, state, seconds


def main():
    args = parse_args()
    mib = 2.0**20
    print(f'D={args.dim}, C={args.classes}, {args.image_pixels} pixels per '
          f'image, bank {args.bank_size}')
    print('| images | reference pixels | peak during fit (MiB) | state '
          '(MiB) | all embeddings kept (MiB) | fit s/image |')
    print('|---|---|---|---|---|---|')
    peaks = []
    for n in args.images:
        peak, state, seconds = fit(n, args)
        pixels = n * args.image_pixels
        peaks.append(peak)
        print(f'| {n} | {pixels} | {peak / mib:.1f} | {state / mib:.1f} | '
              f'{pixels * args.dim * 4 / mib:.1f} | {seconds / n:.3f} |')
    print(f'\npeak at {args.images[-1]} images / peak at {args.images[0]}: '
          f'{peaks[-1] / peaks[0]:.3f} (bounded: about 1)')


if __name__ == '__main__':
    main()
