"""Streaming pixel metrics fed device tensors vs CPU inputs (pixels/s), and
whether histogramming on the GPU would pay.

``PixelOODAccumulator.update`` takes a torch tensor on any device and
copies it to the host (``to_numpy``: ``.detach().cpu().numpy()``); the
histogram is counted by numpy on the CPU. For ``--images`` score maps of
``--size`` (Gaussian scores, 5 % OOD pixels, 1 % void), this times, over
``--repeats`` alternated runs (medians):

- ``numpy``: the accumulator fed float32 numpy arrays (the reference);
- ``torch-cpu``: fed CPU tensors;
- ``torch-<device>``: fed tensors on ``--device`` (the copy to the host
  included, as in an evaluation loop on a GPU), and that copy alone;
- ``bincount-cpu`` / ``bincount-<device>``: the core of the histogram
  alone, on the same pixels: the order keys of the float32 scores (the
  accumulator's bins are their top ``bits`` bits), one ``bincount`` over
  ``label * 2^bits + bin`` per image into one histogram kept where it is
  counted (numpy on the CPU; ``torch.bincount`` on the device, the
  histogram copied to the host once at the end), and ``torch.histc`` of
  the scores on the device (fixed-width bins over the range of the first
  image: what a GPU histogram without order keys gives).

The bincount on the device is checked to equal numpy's bin for bin, and the
metrics (AUROC, AP, FPR@95) of the accumulator fed each kind of input to
be equal. Only measured: the accumulator is not changed. Without CUDA,
``--device cpu`` runs the device rows on the CPU (a check of the script).

    python benchmarks/metric_device.py [--images 8] [--size 1024 2048]
        [--repeats 3] [--bits 20] [--device cuda|cpu] [--json FILE]
"""
import argparse
import statistics
import time

import numpy as np
import torch


def make_images(n, size, seed=0):
    """``n`` float32 score maps and uint8 labels (0 ID, 1 OOD, 255 void)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y = (rng.random(size, dtype=np.float32) < 0.05).astype(np.uint8)
        y[rng.random(size, dtype=np.float32) < 0.01] = 255
        s = rng.standard_normal(size, dtype=np.float32) + 1.5 * (y == 1)
        out.append((s, y))
    return out


def order_keys_torch(s):
    """float32 tensor -> int64 tensor of its uint32 order keys (as
    :func:`mmseg_ood.evaluation.functional.float_keys.order_keys`)."""
    bits = (s.float() + 0.0).contiguous().view(torch.int32).to(torch.int64)
    bits = bits & 0xFFFFFFFF
    neg = bits >= 0x80000000
    return torch.where(neg, bits ^ 0xFFFFFFFF, bits | 0x80000000)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=8)
    p.add_argument('--size', type=int, nargs=2, default=[1024, 2048])
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--bits', type=int, default=20)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--json', help='also write the results to this file')
    args = p.parse_args()
    from mmseg_ood.evaluation import PixelOODAccumulator
    from mmseg_ood.evaluation.functional.float_keys import order_keys

    dev = torch.device(args.device)
    cuda = dev.type == 'cuda'
    # the name of the device rows; on the CPU they are a check of the script
    d = dev.type if dev.type != 'cpu' else 'device-cpu'

    def sync():
        if cuda:
            torch.cuda.synchronize()

    images = make_images(args.images, tuple(args.size))
    on_cpu = [(torch.from_numpy(s), torch.from_numpy(y)) for s, y in images]
    on_dev = [(s.to(dev), y.to(dev)) for s, y in on_cpu]
    sync()
    pixels = args.images * args.size[0] * args.size[1]
    shift, width = 32 - args.bits, 1 << args.bits

    def accumulate(pairs):
        def run():
            m = PixelOODAccumulator(bits=args.bits)
            for s, y in pairs:
                m.update(s, y)
            return m.compute()
        return run

    def copy_only():
        for s, y in on_dev:
            s.cpu(), y.cpu()

    def bincount_cpu():
        hist = np.zeros(3 * width, np.int64)
        for s, y in images:
            lab = np.minimum(y, 2).astype(np.intp)  # 255 void -> row 2
            idx = lab * width + (order_keys(s) >> np.uint32(shift))
            hist += np.bincount(idx.ravel(), minlength=3 * width)
        return hist

    def bincount_dev():
        hist = torch.zeros(3 * width, dtype=torch.int64, device=dev)
        for s, y in on_dev:
            lab = y.clamp(max=2).to(torch.int64)
            idx = lab * width + (order_keys_torch(s) >> shift)
            hist += torch.bincount(idx.reshape(-1), minlength=3 * width)
        out = hist.cpu().numpy()
        sync()
        return out

    lo, hi = float(images[0][0].min()), float(images[0][0].max())

    def histc_dev():
        hist = torch.zeros(width, device=dev)
        for s, _ in on_dev:
            hist += torch.histc(s, bins=width, min=lo, max=hi)
        out = hist.cpu().numpy()
        sync()
        return out

    jobs = {'numpy': accumulate(images), 'torch-cpu': accumulate(on_cpu),
            f'torch-{d}': accumulate(on_dev), f'copy-to-host ({d})': copy_only,
            'bincount-cpu': bincount_cpu, f'bincount-{d}': bincount_dev,
            f'histc-{d}': histc_dev}
    times = {k: [] for k in jobs}
    outs = {}
    for k, fn in jobs.items():  # warm-up (CUDA kernels, allocator)
        outs[k] = fn()
    for _ in range(args.repeats):
        for k, fn in jobs.items():
            sync()
            t0 = time.perf_counter()
            outs[k] = fn()
            sync()
            times[k].append(time.perf_counter() - t0)

    metrics = {k: v for k, v in outs.items() if isinstance(v, dict)}
    ref = metrics['numpy']
    keys = ('auroc', 'ap', 'fpr95')
    metric_diff = max(abs(m[key] - ref[key]) for m in metrics.values()
                      for key in keys)
    bins_equal = bool(np.array_equal(outs['bincount-cpu'],
                                     outs[f'bincount-{d}']))
    print(f'images: {args.images} x {args.size[0]}x{args.size[1]} '
          f'({pixels:,} pixels), bits {args.bits}, device {dev}, '
          f'repeats {args.repeats} (medians), CPU threads '
          f'{torch.get_num_threads()}')
    print(f'{"input / step":28s} {"median s":>9s} {"Mpixels/s":>10s}')
    results = {}
    for k, t in times.items():
        med = statistics.median(t)
        results[k] = dict(seconds=t, median_s=med,
                          pixels_per_s=pixels / med)
        print(f'{k:28s} {med:9.4f} {pixels / med / 1e6:10.1f}')
    gpu_bc = results[f'bincount-{d}']['median_s']
    cpu_bc = results['bincount-cpu']['median_s']
    acc = results['numpy']['median_s']
    print(f'max |metric difference| across inputs: {metric_diff:.2e}')
    print(f'bincount on {d} equals numpy bin for bin: {bins_equal}')
    print(f'histogram core, cpu / {d}: {cpu_bc / gpu_bc:.1f}x; '
          f'accumulator (numpy input) / bincount-{d}: {acc / gpu_bc:.1f}x '
          '(above 1: counting on the device would pay)')
    if args.json:
        from bench_record import write_results
        write_results(args.json, 'metric_device', dict(
            settings=dict(images=args.images, size=args.size,
                          repeats=args.repeats, bits=args.bits,
                          device=str(dev), threads=torch.get_num_threads()),
            results=results,
            metrics={k: {key: m[key] for key in keys}
                     for k, m in metrics.items()},
            max_metric_difference=metric_diff,
            bincount_equal=bins_equal,
            speedup_histogram_core=cpu_bc / gpu_bc,
            speedup_vs_accumulator=acc / gpu_bc))


if __name__ == '__main__':
    main()
