"""Cost of the safe writes: what ``utils.files`` adds per file over a plain
write, for the outputs ``tools/ood_infer.py`` writes per image.

Per image ood_infer writes an overlay PNG, a label-map PNG, a mask PNG and
a float32 score map (``.npy``). This writes ``--images`` such sets at
``--size`` (default 512x1024, random content) into a fresh folder, once
plainly (``cv2.imwrite`` / ``np.save`` to the final name) and once through
``write_with`` (temporary file in the same folder, fsync, ``os.replace``,
fsync of the folder), alternating the order over ``--repeats``, and prints
the median seconds per image set of each and their ratio. Encoding the
PNGs dominates both; the ratio is what the atomicity and the fsyncs cost.

    python benchmarks/atomic_writes.py [--images 20] [--size 512 1024]
        [--repeats 3] [--dir DIR]

``--dir`` chooses the file system (default: a temporary folder).
"""
import argparse
import os
import os.path as osp
import shutil
import statistics
import tempfile
import time

import cv2
import numpy as np

from mmseg_ood.utils.files import write_with


def _arrays(size, seed):
    rng = np.random.default_rng(seed)
    h, w = size
    return (rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            rng.integers(0, 7, (h, w), dtype=np.uint8),
            (rng.random((h, w)) > 0.9).astype(np.uint8) * 255,
            rng.random((h, w), dtype=np.float32))


def _plain(folder, i, arrays):
    vis, pred, mask, score = arrays
    assert cv2.imwrite(osp.join(folder, f'vis_{i}.png'), vis)
    assert cv2.imwrite(osp.join(folder, f'pred_{i}.png'), pred)
    assert cv2.imwrite(osp.join(folder, f'mask_{i}.png'), mask)
    np.save(osp.join(folder, f'score_{i}.npy'), score)


def _safe(folder, i, arrays):
    vis, pred, mask, score = arrays
    write_with(osp.join(folder, f'vis_{i}.png'),
               lambda t: cv2.imwrite(t, vis))
    write_with(osp.join(folder, f'pred_{i}.png'),
               lambda t: cv2.imwrite(t, pred))
    write_with(osp.join(folder, f'mask_{i}.png'),
               lambda t: cv2.imwrite(t, mask))
    write_with(osp.join(folder, f'score_{i}.npy'),
               lambda t: np.save(t, score))


def _time(write, root, images, data):
    folder = tempfile.mkdtemp(dir=root)
    try:
        t0 = time.perf_counter()
        for i in range(images):
            write(folder, i, data[i % len(data)])
        return (time.perf_counter() - t0) / images
    finally:
        shutil.rmtree(folder)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=20)
    p.add_argument('--size', type=int, nargs=2, default=(512, 1024))
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--dir', help='folder on the file system to measure')
    args = p.parse_args(argv)
    root = args.dir or tempfile.mkdtemp()
    os.makedirs(root, exist_ok=True)
    data = [_arrays(args.size, s) for s in range(4)]
    times = {'plain': [], 'safe': []}
    for r in range(args.repeats):
        order = ('plain', 'safe') if r % 2 == 0 else ('safe', 'plain')
        for name in order:
            times[name].append(_time(_plain if name == 'plain' else _safe,
                                     root, args.images, data))
    plain, safe = (statistics.median(times[k]) for k in ('plain', 'safe'))
    print(f'{args.images} image sets of {args.size[0]}x{args.size[1]} '
          f'(overlay, label map, mask PNGs + float32 .npy), median of '
          f'{args.repeats}:')
    print(f'  plain writes: {plain * 1000:8.1f} ms per image')
    print(f'  safe writes:  {safe * 1000:8.1f} ms per image '
          f'(temporary file, fsync, os.replace)')
    print(f'  ratio safe / plain: {safe / plain:.3f}')
    if not args.dir:
        shutil.rmtree(root)


if __name__ == '__main__':
    main()
