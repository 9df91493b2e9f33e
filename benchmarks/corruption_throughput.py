"""Corruption cost: images/s of each ImageNet-C corruption at 512x1024, and
a several-model robustness run against separate ``tools/test.py`` runs.

Part 1 (generation): each of the 15 ``CORRUPTIONS`` at ``--severity`` on
a synthetic street image rendered at 512x1024 (BGR uint8, as mmcv loads
it), through ``ImageCorruption.corrupt`` -- the call the test pipeline
makes. Each corruption first runs once on a 64x128 copy (numba compiles
``glass_blur``'s pixel shuffle, the toolkit reads frost's texture files:
a once-per-process cost, kept out of images/s and shown as ``first s``),
then on ``--repeats`` distinct image paths (distinct seeds, so distinct
random draws); the median time gives images/s. The table is sorted by
cost, and the total is one image through all 15.

Part 2 (ratio): ``--models`` models (the same 2-iteration checkpoint of the
synthetic street config under distinct names), the synthetic street val
set (``--images`` images, resized in place to ``--size``, 512x1024 by
default) seen at full resolution, the clean cell and each of
``--corruptions`` at ``--severity``. Compared, each in its own fresh
process and timed by wall clock (process start, imports and model building
included), alternating the order over ``--repeats``:

(a) one ``tools/robustness_test.py`` run with all models: its corruption
    cache makes the first model corrupt each image and the other models
    read the PNG back, so every image is corrupted once per cell;
(b) what one would run without it: a ``tools/test.py`` run per model and
    cell (clean, and each corruption through a config whose test pipeline
    has ``ImageCorruption`` right after ``LoadImageFromFile``, no cache),
    so every image is corrupted once per model.

Both evaluate the same cells on the same pixels (the corruption is seeded
by the image path, corruption and severity). (a) also does work that (b)
does not -- the calibration metric and the tables and figures (Fig. 6
reuses the cells' own passes) -- and it is still counted against it. The
goal is a/b <= 0.5 for 3 models. The medians of the repeats are printed,
with the mIoU of every cell from both sides as a check that they measured
the same thing and, when part 1 ran, what corrupting the images alone
costs each side.

    python benchmarks/corruption_throughput.py [--images 6] [--severity 3]
        [--corruptions glass_blur gaussian_noise] [--repeats 2]
        [--models 3] [--size 512 1024] [--skip-generation] [--skip-ratio]
"""
import argparse
import glob
import json
import os
import os.path as osp
import pprint
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'synthetic',
                  'deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py')
SIZE = (512, 1024)  # (height, width) of generation; the ratio's default
# Two Runner iterations in one CPU process, as tests/conftest.py trains.
QUICK_OPTIONS = [
    'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
    'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
    'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
    'test_dataloader.num_workers=0',
    'test_dataloader.persistent_workers=False'
]


def full_res_pipeline(size):
    """The street config's test pipeline, inferring at ``size`` (h, w)."""
    return [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(size[1], size[0]), keep_ratio=True),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs')
    ]


def street_image(index=0):
    """A synthetic street scene rendered at 512x1024, BGR uint8."""
    from mmseg_ood.synthetic import SyntheticSpec, render_id
    from mmseg_ood.synthetic.textures import to_uint8
    img, _ = render_id(SyntheticSpec('street', size=SIZE), 'val', index)
    return cv2.cvtColor(to_uint8(img), cv2.COLOR_RGB2BGR)


def generation(severity, repeats):
    from mmseg_ood.datasets import CORRUPTIONS, ImageCorruption
    img = street_image()
    small = cv2.resize(img, (128, 64), interpolation=cv2.INTER_AREA)
    rows = []
    for name in CORRUPTIONS:
        t = ImageCorruption(name, severity)
        t0 = time.perf_counter()
        t.corrupt(small, '/bench/first.png')
        first = time.perf_counter() - t0
        times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            out = t.corrupt(img, f'/bench/street_{r:04d}.png')
            times.append(time.perf_counter() - t0)
            if out.shape != img.shape or out.dtype != np.uint8:
                sys.exit(f'{name}: got {out.dtype} {out.shape}, expected '
                         f'uint8 {img.shape}')
        rows.append((name, statistics.median(times), times, first))
    rows.sort(key=lambda r: -r[1])
    print(f'== generation: {SIZE[1]}x{SIZE[0]} BGR uint8, severity '
          f'{severity}, {repeats} image path(s) each, median ==')
    print(f'{"corruption":18s} {"s/image":>8s} {"images/s":>9s} '
          f'{"first s":>8s}  runs s')
    for name, med, times, first in rows:
        print(f'{name:18s} {med:8.3f} {1 / med:9.2f} {first:8.3f}  ' +
              ', '.join(f'{t:.3f}' for t in times))
    total = sum(r[1] for r in rows)
    print(f'one image through all {len(rows)}: {total:.2f} s '
          f'({len(rows) / total:.2f} corrupted images/s)')
    return {r[0]: r[1] for r in rows}


def run(cmd, env, log):
    """Wall time of ``cmd`` in a fresh process; exits on failure."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         cwd=REPO)
    dt = time.perf_counter() - t0
    with open(log, 'w') as f:
        f.write(out.stdout + out.stderr)
    if out.returncode:
        sys.exit(f'failed ({out.returncode}): {" ".join(cmd)}\n'
                 f'{out.stdout[-2000:]}\n{out.stderr[-3000:]}')
    return dt


def write_config(path, base, **fields):
    body = ''.join(f'{k} = {pprint.pformat(v, width=72)}\n'
                   for k, v in fields.items())
    with open(path, 'w') as f:
        f.write(f'_base_ = {base!r}\n{body}')
    return path


def setup(tmp, images, corruptions, severity, env, size):
    """Data (val images at ``size``), a checkpoint and the test configs:
    ``{'clean': cfg, corruption: cfg}`` and the checkpoint path."""
    from mmseg_ood.datasets import with_corruption
    from mmseg_ood.synthetic import make_synthetic_benchmark
    data = osp.join(tmp, 'data')
    root = make_synthetic_benchmark(
        data, num_train=2, num_val=images, num_ood=1, num_image_ood=1,
        num_proxy=1, variants=['street'])['street']
    train = osp.join(tmp, 'train')
    run([sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIG,
         '--work-dir', train, '--cfg-options', *QUICK_OPTIONS], env,
        osp.join(tmp, 'train.log'))
    with open(osp.join(train, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    # trained at 128x256; tested on copies of the val set at ``size``
    for sub, interp in (('images', cv2.INTER_LINEAR),
                        ('annotations', cv2.INTER_NEAREST)):
        for p in sorted(glob.glob(osp.join(root, sub, 'val', '*.png'))):
            a = cv2.imread(p, cv2.IMREAD_UNCHANGED)
            cv2.imwrite(p, cv2.resize(a, (size[1], size[0]),
                                      interpolation=interp))
    full_res = full_res_pipeline(size)
    cfgs = {'clean': write_config(
        osp.join(tmp, 'clean.py'), CONFIG, test_pipeline=full_res,
        test_dataloader=dict(num_workers=0, persistent_workers=False,
                             dataset=dict(pipeline=full_res)))}
    for c in corruptions:
        pipeline = with_corruption(full_res, c, severity)
        cfgs[c] = write_config(
            osp.join(tmp, f'{c}.py'), cfgs['clean'],
            test_dataloader=dict(dataset=dict(pipeline=pipeline)))
    return cfgs, ckpt


def test_miou(work):
    """mIoU (fraction) from the metrics JSON tools/test.py wrote."""
    for p in glob.glob(osp.join(work, '*', '*.json')):
        with open(p) as f:
            d = json.load(f)
        if 'mIoU' in d:
            return d['mIoU'] / 100
    return float('nan')


def ratio(images, corruptions, severity, repeats, num_models, size,
          costs=None):
    import torch
    names = [chr(ord('a') + i) for i in range(num_models)]
    cells = ['clean'] + list(corruptions)
    with tempfile.TemporaryDirectory(prefix='mmseg_ood_corr_') as tmp:
        env = dict(os.environ, MMSEG_OOD_DATA=osp.join(tmp, 'data'))
        t0 = time.perf_counter()
        cfgs, ckpt = setup(tmp, images, corruptions, severity, env, size)
        print(f'\n== ratio: setup (data, 2-iteration training) '
              f'{time.perf_counter() - t0:.1f} s ==')
        times = {'a': [], 'b': []}
        miou = {'a': {}, 'b': {}}
        for r in range(repeats):
            for side in ('ab' if r % 2 == 0 else 'ba'):
                work = osp.join(tmp, f'{side}{r}')
                if side == 'a':
                    cmd = [sys.executable,
                           osp.join(REPO, 'tools', 'robustness_test.py')]
                    for _ in names:
                        cmd += [cfgs['clean'], ckpt]
                    cmd += ['--names', *names, '--corruptions', *corruptions,
                            '--severities', str(severity), '--work-dir',
                            work]
                    times['a'].append(run(cmd, env, work + '.log'))
                    with open(osp.join(work, 'robustness.json')) as f:
                        res = json.load(f)['cells']
                    for k, v in res.items():
                        n, c, _, _ = k.split('|')
                        miou['a'][(n, c)] = v['miou']
                    continue
                total = 0.0
                for n in names:
                    for c in cells:
                        w = osp.join(work, n, c)
                        total += run(
                            [sys.executable,
                             osp.join(REPO, 'tools', 'test.py'), cfgs[c],
                             ckpt, '--work-dir', w], env, w + '.log')
                        miou['b'][(n, c)] = test_miou(w)
                times['b'].append(total)
        a, b = (statistics.median(times[k]) for k in 'ab')
    print(f'{images} val images at {size[1]}x{size[0]} (full-resolution '
          f'inference), {num_models} models (DeepLabV3+ R18, 2 iterations), '
          f'cells: clean + {", ".join(f"{c}@{severity}" for c in corruptions)}'
          f', CPU threads: {torch.get_num_threads()}, repeats: {repeats}')
    for label, t, runs in (
            ('(a) robustness_test, 1 process', a, times['a']),
            (f'(b) test.py, {num_models * len(cells)} processes '
             f'({num_models} x {len(cells)})', b, times['b'])):
        print(f'{label:36s} {t:8.1f} s   (runs: ' +
              ', '.join(f'{x:.1f}' for x in runs) + ')')
    diff = max(abs(miou['a'][k] - miou['b'][k]) for k in miou['b'])
    print('mIoU per cell (a / b): ' + ', '.join(
        f'{c} {miou["a"][(names[0], c)]:.4f} / {miou["b"][(names[0], c)]:.4f}'
        for c in cells) + f'   max |diff| over models {diff:.2e}')
    if costs and tuple(size) == SIZE:
        # part 1's medians: what corrupting alone costs each side
        once = images * sum(costs[c] for c in corruptions)
        print(f'corrupting alone (part 1 medians): (a) {once:.1f} s, (b) '
              f'{num_models * once:.1f} s')
    print(f'ratio wall time a / b  {a / b:.3f}   goal <= 0.5: '
          f'{"met" if a / b <= 0.5 else "NOT met"}')


def main():
    from mmseg_ood.datasets import CORRUPTIONS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=6,
                   help='val images of the ratio run')
    p.add_argument('--severity', type=int, default=3, choices=range(1, 6))
    p.add_argument('--corruptions', nargs='+', choices=CORRUPTIONS,
                   metavar='NAME',
                   default=['glass_blur', 'gaussian_noise'],
                   help='the corrupted cells of the ratio run')
    p.add_argument('--repeats', type=int, default=2,
                   help='image paths per corruption; runs of each side')
    p.add_argument('--models', type=int, default=3,
                   help='models of the ratio run')
    p.add_argument('--size', type=int, nargs=2, default=list(SIZE),
                   metavar=('H', 'W'),
                   help='image size of the ratio run (generation is always '
                   f'timed at {SIZE[0]} {SIZE[1]})')
    p.add_argument('--skip-generation', action='store_true')
    p.add_argument('--skip-ratio', action='store_true')
    args = p.parse_args()
    for name in ('images', 'repeats', 'models'):
        if getattr(args, name) < 1:
            p.error(f'--{name} must be >= 1, got {getattr(args, name)}')
    if min(args.size) < 32:
        p.error(f'--size must be at least 32 32, got {args.size}')
    if len(set(args.corruptions)) != len(args.corruptions):
        p.error(f'--corruptions repeats a name: {args.corruptions}')
    costs = None if args.skip_generation else generation(args.severity,
                                                         args.repeats)
    if not args.skip_ratio:
        ratio(args.images, args.corruptions, args.severity, args.repeats,
              args.models, tuple(args.size), costs)


if __name__ == '__main__':
    main()
