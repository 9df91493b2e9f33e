"""Meta-classifier segment features of one image vs the forward pass.

Requirement: the OOD-segment features (entropy-maximization paper,
appendix B) of a 1024x2048 image with 19 classes and a realistic number of
segments cost at most 0.10 of a DeepLabV3+ R50 forward pass on the same
image (CPU, one run each, side by side in one process).

- forward: DeepLabV3+ R50-D8 from mmseg's model-zoo config, random
  weights, BN, the whole image through ``encode_decode`` (logits at full
  size), after a warm-up on a quarter-size image.
- features: ``image_segments`` at t = 0.3 ... 0.7 and at t = 0.5 alone,
  with an OOD label map: all the per-image work (pixel measures, labelling,
  features, ground truth). The probabilities are not the random model's
  (nearly uniform: one segment covering the image) but smooth random
  19-class logit fields: confident regions, uncertain class junctions and a
  few OOD objects whose logits are flattened; the segment counts are
  printed.
- each step runs once (``--repeats`` interleaves more runs, A B C A B C,
  and prints medians); the load average is printed, as this is meant for a
  shared CPU machine.
- memory: the peak resident memory of the feature extraction above the
  inputs (VmHWM, reset through /proc/self/clear_refs), in a fresh process
  that never builds the model, relative to the probability tensor.

    python benchmarks/meta_features.py [--height 1024] [--width 2048]
        [--classes 19] [--threads N] [--repeats 1]
"""
import argparse
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7]
CONFIG = ('deeplabv3plus/'
          'deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py')


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--height', type=int, default=1024)
    p.add_argument('--width', type=int, default=2048)
    p.add_argument('--classes', type=int, default=19)
    p.add_argument('--threads', type=int, default=None,
                   help='torch threads (default: torch\'s own)')
    p.add_argument('--repeats', type=int, default=1,
                   help='interleaved runs of each step; medians printed')
    # internal: the memory measurement's fresh process
    p.add_argument('--memory-child', type=int, default=None,
                   help=argparse.SUPPRESS)
    return p.parse_args()


def synthetic_image(h, w, q, seed=0):
    """``(probs (q, H, W) float32, entropy (H, W), ood_labels (H, W))``.

    Logits: a smooth Gaussian field per class (noise on a grid of 128-pixel
    cells, bilinearly upsampled) times 16, so that most pixels are
    confident (median normalized entropy ~0.04) and the junctions of three
    or more classes are not; six rectangles of flattened logits (x 0.1) are
    the OOD objects; the bottom 8 % of rows (the ego vehicle) are void."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, q, h // 128 + 2, w // 128 + 2, generator=g)
    logits = 16 * F.interpolate(coarse, size=(h, w), mode='bilinear',
                                align_corners=False)[0]
    ood = np.zeros((h, w), np.uint8)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        oh = int(rng.integers(h // 50, h // 8))
        ow = int(rng.integers(w // 100, w // 12))
        y = int(rng.integers(h // 2, int(0.9 * h) - oh))
        x = int(rng.integers(0, w - ow))
        logits[:, y:y + oh, x:x + ow] *= 0.1
        ood[y:y + oh, x:x + ow] = 1
    ood[int(0.92 * h):] = 255
    probs = logits.softmax(0).contiguous()
    entropy = -torch.special.xlogy(probs, probs).sum(0) / np.log(q)
    return probs, entropy, ood


def build_model():
    import mmseg
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules()
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', CONFIG)
    cfg = Config.fromfile(path)
    cfg.model.pretrained = None

    from mmseg_ood.utils import sync_bn_to_bn
    sync_bn_to_bn(cfg.model)  # one CPU process, no process group
    init_default_scope('mmseg')
    torch.manual_seed(0)
    # PyTorch's default initialisation: init_weights() would only log a
    # page per parameter; the forward's cost does not depend on the values
    return MODELS.build(cfg.model).eval()


def make_forward(model, h, w):
    """The forward pass on a random ``(1, 3, hh, ww)`` image: logits at
    the image's size, as the features need them."""
    x = torch.randn(1, 3, h, w)

    def forward(hh, ww):
        metas = [dict(img_shape=(hh, ww), ori_shape=(hh, ww))]
        out = model.encode_decode(x[..., :hh, :ww], metas)
        assert out.shape[-2:] == (hh, ww), out.shape

    return forward


def _status(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f'{field} not in /proc/self/status')


def memory_child(args):
    """Print the peak resident bytes of one ``image_segments`` call above
    the memory held before it (inputs built, peak reset)."""
    from mmseg_ood.meta.segments import image_segments
    probs, entropy, ood = synthetic_image(args.height, args.width,
                                          args.classes)
    thresholds = THRESHOLDS[:args.memory_child] if args.memory_child > 1 \
        else [0.5]
    image_segments(probs[:, :64, :64], entropy[:64, :64], thresholds,
                   ood[:64, :64])  # lazy imports / first-call allocations
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset VmHWM to the current VmRSS
    base = _status('VmRSS')
    out = image_segments(probs, entropy, thresholds, ood)
    print('PEAK', _status('VmHWM') - base, len(out))


def peak_memory(args, num_thresholds):
    """Peak extra bytes in a fresh process, or None where /proc is
    missing."""
    if not osp.exists('/proc/self/clear_refs'):
        return None
    cmd = [sys.executable, osp.abspath(__file__), '--height',
           str(args.height), '--width', str(args.width), '--classes',
           str(args.classes), '--memory-child', str(num_thresholds)]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = [x for x in res.stdout.splitlines() if x.startswith('PEAK')][-1]
    return int(line.split()[1])


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    if args.memory_child is not None:
        return memory_child(args)
    from mmseg_ood.meta.segments import image_segments, pixel_measures
    h, w, q = args.height, args.width, args.classes
    probs, entropy, ood = synthetic_image(h, w, q)
    image_segments(probs[:, :64, :64], entropy[:64, :64], THRESHOLDS,
                   ood[:64, :64])  # warm-up
    with warnings.catch_warnings():  # mmseg's deprecation notices
        warnings.simplefilter('ignore', UserWarning)
        model = build_model()
    forward = make_forward(model, h, w)
    forward(max(h // 4, 64), max(w // 4, 64))  # warm-up

    def timed(fn, *a):
        t0 = time.perf_counter()
        out = fn(*a)
        return time.perf_counter() - t0, out

    load = os.getloadavg()[0]
    times = {k: [] for k in ('forward', 'all', 'one', 'measures')}
    for _ in range(args.repeats):  # side by side: A, B, C, D, A, B, ...
        times['forward'].append(timed(forward, h, w)[0])
        t, segs = timed(image_segments, probs, entropy, THRESHOLDS, ood)
        times['all'].append(t)
        times['one'].append(
            timed(image_segments, probs, entropy, [0.5], ood)[0])
        times['measures'].append(timed(pixel_measures, probs)[0])
    del model
    t_forward = statistics.median(times['forward'])

    print(f'model: DeepLabV3+ R50-D8 ({CONFIG}), random weights, BN')
    print(f'image: {h}x{w}  classes: {q}  device: cpu  threads: '
          f'{torch.get_num_threads()}  runs: {args.repeats} each'
          f'{", interleaved" if args.repeats > 1 else ""}  load average '
          f'(1 min) before / after: {load:.2f} / {os.getloadavg()[0]:.2f}')
    print(f'pixels with normalized entropy >= t, segments, ground truth '
          f'({segs[0].truth.num_objects} OOD objects):')
    print(f'  {"t":>5s} {"pixels %":>9s} {"segments":>9s} {"TP":>5s} '
          f'{"FP":>5s} {"ignored":>8s} {"missed objects":>15s}')
    for s in segs:
        kind, t = s.truth.kind, s.truth
        missed = t.num_objects - len(np.unique(t.touches[:, 1]))
        print(f'  {s.threshold:5.1f} {100 * (s.labels > 0).mean():9.3f} '
              f'{s.num_segments:9d} {(kind == 1).sum():5d} '
              f'{(kind == 0).sum():5d} {(kind == -1).sum():8d} '
              f'{missed:15d}')
    what = 'median ' if args.repeats > 1 else ''
    print(f'{"step":36s} {what + "time s":>13s} {"/ forward":>10s}')
    rows = [('forward (encode_decode)', 'forward'),
            ('features, 5 thresholds', 'all'),
            ('features, 1 threshold (t = 0.5)', 'one'),
            ('  of which pixel measures', 'measures')]
    for name, key in rows:
        t = statistics.median(times[key])
        print(f'{name:36s} {t:13.3f} {t / t_forward:10.4f}')
    ratio = statistics.median(times['all']) / t_forward
    print(f'goal: features (5 thresholds) / forward <= 0.10: '
          f'{"yes" if ratio <= 0.10 else "NO"} ({ratio:.4f})')

    p_bytes = probs.numel() * probs.element_size()
    for k in (len(THRESHOLDS), 1):
        peak = peak_memory(args, k)
        label = f'{k} thresholds' if k > 1 else '1 threshold'
        if peak is None:
            print(f'peak extra memory ({label}): n/a (no /proc)')
            continue
        print(f'peak extra memory ({label}): {peak / 2**20:.0f} MiB = '
              f'{peak / p_bytes:.2f} x the probabilities '
              f'({p_bytes / 2**20:.0f} MiB, float32)')


if __name__ == '__main__':
    main()
