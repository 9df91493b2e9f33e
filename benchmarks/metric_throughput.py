"""PixelOODAccumulator vs scikit-learn (exact) on many pixels.

For each of three score distributions (Gaussian, unbounded energies, heavy
ties), both compute AUROC, AP and FPR@95 over the same pixels in one run:
the streaming metric image by image (chunks of ``--chunk`` pixels, as from
a dataloader), sklearn on the concatenated arrays. Printed side by side:
time, peak memory allocated during the computation (tracemalloc; the input
arrays themselves are excluded; measured in a separate, untimed run), the
accumulator size, the speed-up and the absolute differences. The streaming
time is the best of 3 runs, sklearn's a single run.

    python benchmarks/metric_throughput.py [--pixels 50000000]
        [--chunk 2097152]
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


def measure(fn, repeats=1):
    """Result, best wall time of ``repeats`` runs (without tracing), and
    the peak memory of one more run under tracemalloc (tracing slows
    numpy's small allocations, so it is not timed)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, min(times), peak


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--pixels', type=int, default=50_000_000)
    p.add_argument('--chunk', type=int, default=2048 * 1024)
    args = p.parse_args()
    from mmseg_ood.evaluation import PixelOODAccumulator

    print(f'pixels: {args.pixels:,}  chunk: {args.chunk:,}')
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

        # best of 3 for the streaming side (a fraction of a second, so a
        # busy shared machine shows in single runs); sklearn once
        (ours, acc_bytes), t_s, m_s = measure(streaming, repeats=3)
        ref, t_e, m_e = measure(exact)
        for label, r, t, m in (('streaming', ours, t_s, m_s),
                               ('sklearn', ref, t_e, m_e)):
            print(f'{name:20s} {label:10s} {t:8.2f} {m / 2**20:9.1f} '
                  f'{r["auroc"]:9.6f} {r["ap"]:9.6f} {r["fpr95"]:9.6f}')
        diffs = {k: abs(ours[k] - ref[k]) for k in ('auroc', 'ap', 'fpr95')}
        print(f'{"":20s} speed-up {t_e / t_s:6.1f}x   memory ratio '
              f'{m_e / max(m_s, 1):6.1f}x   accumulator '
              f'{acc_bytes / 2**20:.0f} MiB   |diff| ' +
              '  '.join(f'{k} {v:.2e}' for k, v in diffs.items()))


if __name__ == '__main__':
    main()
