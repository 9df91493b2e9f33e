"""PixelOODAccumulator vs scikit-learn (exact) on many pixels.

For each of three score distributions (Gaussian, unbounded energies, heavy
ties), both compute AUROC, AP and FPR@95 over the same pixels in one run:
the streaming metric image by image (chunks of ``--chunk`` pixels, as from
a dataloader), sklearn on the concatenated arrays. The two are timed
alternately ``--repeats`` times (so that load from other jobs falls on
both alike) and the medians are printed, with the speed-up as the ratio of
the medians and its spread (the lowest and highest per-repeat ratio); peak
memory allocated during the computation (tracemalloc; the input arrays
themselves are excluded) comes from a separate, untimed run of each. Also
printed: the accumulator size and the absolute differences.

    python benchmarks/metric_throughput.py [--pixels 50000000]
        [--chunk 2097152] [--repeats 5]
"""
import argparse
import time
import tracemalloc

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def distributions(n, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n, dtype=np.float32) < 0.05).astype(np.uint8)
    yield 'gaussian', (rng.standard_normal(n, dtype=np.float32) +
                       1.5 * y), y
    yield 'energy (unbounded)', (-rng.gamma(5.0, 4.0, n).astype(np.float32)
                                 * (1 - 0.3 * y) - 20), y
    yield 'heavy ties', np.round(
        rng.standard_normal(n, dtype=np.float32) + y, 1), y


def peak_memory(fn):
    """Peak memory allocated while ``fn()`` runs (tracemalloc; tracing
    slows numpy's small allocations, so this run is not timed)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def alternate(fns, repeats):
    """Each function's results and its wall times, the functions run in
    turn ``repeats`` times."""
    times = [[] for _ in fns]
    outs = [None] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return outs, [np.asarray(t) for t in times]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--pixels', type=int, default=50_000_000)
    p.add_argument('--chunk', type=int, default=2048 * 1024)
    p.add_argument('--repeats', type=int, default=5,
                   help='timed runs of each side, alternated (medians)')
    args = p.parse_args()
    from mmseg_ood.evaluation import PixelOODAccumulator

    print(f'pixels: {args.pixels:,}  chunk: {args.chunk:,}  repeats: '
          f'{args.repeats} (medians)')
    head = (f'{"distribution":20s} {"method":10s} {"time s":>8s} '
            f'{"peak MiB":>9s} {"AUROC":>9s} {"AP":>9s} {"FPR95":>9s}')
    print(head)
    for name, s, y in distributions(args.pixels):

        def streaming():
            m = PixelOODAccumulator(name=name)
            for i in range(0, s.size, args.chunk):
                m.update(s[i:i + args.chunk], y[i:i + args.chunk])
            return m.compute(), m.nbytes

        def exact():
            fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
            return dict(auroc=roc_auc_score(y, s),
                        ap=average_precision_score(y, s),
                        fpr95=float(fpr[np.searchsorted(tpr, 0.95)]))

        ((ours, acc_bytes), ref), (t_s, t_e) = alternate(
            [streaming, exact], args.repeats)
        m_s, m_e = peak_memory(streaming), peak_memory(exact)
        for label, r, t, m in (('streaming', ours, t_s, m_s),
                               ('sklearn', ref, t_e, m_e)):
            print(f'{name:20s} {label:10s} {np.median(t):8.3f} '
                  f'{m / 2**20:9.1f} {r["auroc"]:9.6f} {r["ap"]:9.6f} '
                  f'{r["fpr95"]:9.6f}')
        diffs = {k: abs(ours[k] - ref[k]) for k in ('auroc', 'ap', 'fpr95')}
        ratios = t_e / t_s
        print(f'{"":20s} speed-up {np.median(t_e) / np.median(t_s):6.1f}x '
              f'(per repeat {ratios.min():.1f}x to {ratios.max():.1f}x)   '
              f'memory ratio {m_e / max(m_s, 1):6.1f}x   accumulator '
              f'{acc_bytes / 2**20:.0f} MiB   |diff| ' +
              '  '.join(f'{k} {v:.2e}' for k, v in diffs.items()))


if __name__ == '__main__':
    main()
