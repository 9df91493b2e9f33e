"""The SMIYC benchmark's own evaluation code against this package's, on the
same generated score maps: time, peak memory and accuracy.

Needs a checkout of ``SegmentMeIfYouCan/road-anomaly-benchmark`` (nothing
of it is copied here: its metrics are imported from ``--smiyc-code PATH``
at run time). Without one the script says so and exits with status 0.

The data: ``--frames`` frames of ``--size H W`` with smooth OOD blobs
(label 1), void regions (255) and the rest ID (0); per ``--kinds``, float32
score maps: ``probability`` (in [0, 1], like 1 - max softmax) and ``logit``
(both signs, like standardized max logits). Per kind, each side in one
process, the two alternated ``--repeats`` times (medians):

- pixel metrics: the benchmark's ``MetricPixelClassification``
  (``PixBinaryClass``: per-frame quantile bins) ``process_frame`` per frame
  and ``aggregate``, against ``PixelOODAccumulator.update`` per frame and
  ``compute``;
- component metrics at each side's own best-F1 threshold: the benchmark's
  ``MetricSegment`` (``--preset`` sizes) ``process_frame`` and
  ``aggregate``, against ``ComponentAccumulator`` (the package's default:
  exact threshold, ``>=``); and the package's SMIYC mode
  (``SMIYCBinnedCurve`` for the threshold, then ``ComponentAccumulator``
  with ``strict=True`` and ``SMIYC_TAUS``), which must give the
  benchmark's numbers;
- peak memory of each (tracemalloc, a separate untimed run; the score maps
  themselves excluded);
- accuracy: AP, AUROC and FPR95 of both against scikit-learn (exact) on
  the same non-void pixels.

    python benchmarks/smiyc_code_comparison.py --smiyc-code PATH
        [--frames 30] [--size 512 1024] [--repeats 5] [--kinds probability
        logit] [--preset anomaly_track]

The benchmark's code imports ``easydict``, ``pandas``, ``IPython``,
``matplotlib``, ``h5py``, ``scipy``, ``tqdm`` and ``PIL`` at import time,
and calls ``np.trapz`` (removed in numpy 2.4; ``np.trapezoid`` is the same
function) and ``matplotlib.cm.get_cmap`` (removed in matplotlib 3.9). What
is missing here is named when the script runs and replaced by a stand-in
that plays no part in the numbers: ``easydict.EasyDict`` (a dict with
attribute access, how the metrics use it), ``pandas`` and
``IPython.display`` (plots and notebooks only), ``np.trapz`` ->
``np.trapezoid``, ``cm.get_cmap`` -> ``matplotlib.colormaps``.
"""
import argparse
import contextlib
import io
import os.path as osp
import sys
import time
import tracemalloc
import types
import warnings

import numpy as np


def smiyc_modules(path):
    """The benchmark's two metric classes from the checkout at ``path``,
    and the stand-ins used (a list of strings)."""
    used = []
    try:
        import easydict  # noqa: F401
    except ImportError:
        module = types.ModuleType('easydict')

        class EasyDict(dict):
            """A dict whose keys are attributes too."""

            def __getattr__(self, key):
                try:
                    return self[key]
                except KeyError:
                    raise AttributeError(key) from None

            def __setattr__(self, key, value):
                self[key] = value

        module.EasyDict = EasyDict
        module.stand_in = True
        sys.modules['easydict'] = module
        used.append('easydict (a dict with attribute access)')
    for name, attrs in (('pandas', ('DataFrame', 'Series')),
                        ('IPython', ()), ('IPython.display',
                                          ('display_html', ))):
        try:
            __import__(name)
        except ImportError:
            module = types.ModuleType(name)
            module.stand_in = True
            for a in attrs:
                setattr(module, a, None)
            sys.modules[name] = module
            if name == 'IPython.display':
                sys.modules['IPython'].display = module
            used.append(f'{name} (unused by the metrics)')
    if not hasattr(np, 'trapz'):
        np.trapz = np.trapezoid
        used.append('np.trapz -> np.trapezoid (renamed in numpy 2)')
    import matplotlib
    import matplotlib.cm
    if not hasattr(matplotlib.cm, 'get_cmap'):

        def get_cmap(name=None, lut=None):
            cmap = matplotlib.colormaps[name]
            return cmap.resampled(lut) if lut else cmap

        matplotlib.cm.get_cmap = get_cmap
        used.append('matplotlib.cm.get_cmap -> matplotlib.colormaps')
    sys.path.insert(0, path)
    from road_anomaly_benchmark.metrics.instance_segmentation import \
        MetricSegment
    from road_anomaly_benchmark.metrics.pixel_classification import \
        MetricPixelClassification
    # the metrics hold what they imported; other libraries must not find
    # the stand-ins (scikit-learn and matplotlib look for pandas / IPython)
    for name in [n for n, m in sys.modules.items()
                 if getattr(m, 'stand_in', False)]:
        del sys.modules[name]
    return MetricPixelClassification, MetricSegment, used


def make_frames(num, size, kind, seed=0):
    """``num`` (scores float32, labels uint8) pairs of ``size``: smooth
    fields, as a segmentation network's maps are, and frames that differ
    (each its own offset and OOD contrast)."""
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    h, w = size

    def smooth(sigma):
        # a field of unit variance varying over about 8 * sigma pixels
        low = ndimage.gaussian_filter(
            rng.standard_normal((h // 8 + 2, w // 8 + 2)), sigma)
        up = ndimage.zoom(low / low.std(), 8, order=1)
        return up[:h, :w]

    frames = []
    for _ in range(num):
        # OOD blobs of a few hundred to tens of thousands of pixels, void
        # where another field is low
        blobs = smooth(2.5)
        lab = (blobs > 1.6).astype(np.uint8)
        lab[smooth(6.0) < -1.2] = 255
        z = (smooth(1.5) + 0.5 * blobs + rng.uniform(1.5, 3.0) * (lab == 1)
             + 0.2 * rng.standard_normal((h, w)) + rng.normal(0, 0.3))
        if kind == 'probability':
            s = 1.0 / (1.0 + np.exp(-(1.5 * z - 3.0)))
        else:
            s = z
        frames.append((s.astype(np.float32), lab))
    return frames


def quiet(fn):
    """``fn()`` with stdout (the benchmark's prints) and warnings muted."""
    with contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return fn()


def peak_memory(fn):
    """Peak memory allocated while ``fn()`` runs (tracemalloc)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    quiet(fn)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--smiyc-code', metavar='PATH',
                   help='a checkout of SegmentMeIfYouCan/'
                   'road-anomaly-benchmark (the directory holding '
                   'road_anomaly_benchmark/)')
    p.add_argument('--frames', type=int, default=30)
    p.add_argument('--size', type=int, nargs=2, default=(512, 1024),
                   metavar=('H', 'W'))
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--kinds', nargs='+', default=['probability', 'logit'],
                   choices=['probability', 'logit'])
    p.add_argument('--preset', default='anomaly_track',
                   choices=['anomaly_track', 'obstacle_track'])
    args = p.parse_args()
    if not args.smiyc_code or not osp.isdir(
            osp.join(args.smiyc_code, 'road_anomaly_benchmark')):
        print('smiyc_code_comparison: skipped: needs --smiyc-code PATH, a '
              'checkout of github.com/SegmentMeIfYouCan/'
              'road-anomaly-benchmark (the directory that holds '
              f'road_anomaly_benchmark/); got {args.smiyc_code!r}')
        return 0
    pixel_cls, segment_cls, used = smiyc_modules(args.smiyc_code)
    from sklearn.metrics import (average_precision_score, roc_auc_score,
                                 roc_curve)

    from mmseg_ood.evaluation import (SIZE_PRESETS, ComponentAccumulator,
                                      PixelOODAccumulator, SMIYCBinnedCurve)
    from mmseg_ood.evaluation.accumulators import SMIYC_TAUS
    if used:
        print('not installed here, replaced by stand-ins: ' +
              '; '.join(used))
    seg_cfg = {'anomaly_track': 'SegEval-AnomalyTrack',
               'obstacle_track': 'SegEval-ObstacleTrack'}[args.preset]
    seg_cfg = next(c for c in segment_cls.configs if c.name == seg_cfg)
    pix_cfg = next(c for c in pixel_cls.configs
                   if c.name == 'PixBinaryClass')
    print(f'frames: {args.frames} of {args.size[0]}x{args.size[1]}, '
          f'repeats: {args.repeats} (medians), preset: {args.preset}')
    for kind in args.kinds:
        frames = make_frames(args.frames, args.size, kind)

        def smiyc_pixel():
            m = pixel_cls(pix_cfg)
            per = [m.process_frame(label_pixel_gt=y, anomaly_p=s,
                                   visualize=False) for s, y in frames]
            return m.aggregate(per, 'method', 'dataset')

        def ours_pixel():
            m = PixelOODAccumulator()
            for s, y in frames:
                m.update(s, y)
            return m.compute()

        def smiyc_components(threshold):
            m = segment_cls(dict(seg_cfg))
            m.cfg.thresh_p = threshold
            per = [m.process_frame(label_pixel_gt=y, anomaly_p=s,
                                   visualize=False) for s, y in frames]
            return m.aggregate(per, 'method', 'dataset')

        def ours_components(threshold, strict=False):
            m = ComponentAccumulator(
                threshold, preset=args.preset, strict=strict,
                taus=SMIYC_TAUS if strict else
                ComponentAccumulator(0.0).taus)
            for s, y in frames:
                m.update(s, y)
            return m.compute()

        def ours_smiyc_threshold():
            m = SMIYCBinnedCurve()
            for s, y in frames:
                m.update(s, y)
            return m.compute()['smiyc_threshold']

        # one untimed run of each for the results and thresholds
        theirs = quiet(smiyc_pixel)
        ours = quiet(ours_pixel)
        t_smiyc = float(theirs.best_f1_threshold)
        t_exact = ours['best_f1_threshold']
        t_mode = quiet(ours_smiyc_threshold)
        times = {k: [] for k in ('smiyc_pixel', 'ours_pixel', 'smiyc_comp',
                                 'ours_comp', 'ours_threshold',
                                 'ours_comp_smiyc')}
        for _ in range(args.repeats):
            for key, fn in (
                    ('smiyc_pixel', smiyc_pixel), ('ours_pixel', ours_pixel),
                    ('smiyc_comp', lambda: smiyc_components(t_smiyc)),
                    ('ours_comp', lambda: ours_components(t_exact)),
                    ('ours_threshold', ours_smiyc_threshold),
                    ('ours_comp_smiyc',
                     lambda: ours_components(t_mode, True))):
                t0 = time.perf_counter()
                quiet(fn)
                times[key].append(time.perf_counter() - t0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        mem = dict(
            smiyc_pixel=peak_memory(smiyc_pixel),
            ours_pixel=peak_memory(ours_pixel),
            smiyc_comp=peak_memory(lambda: smiyc_components(t_smiyc)),
            ours_comp=peak_memory(lambda: ours_components(t_exact)))
        comp_theirs = quiet(lambda: smiyc_components(t_smiyc))
        comp_exact = quiet(lambda: ours_components(t_exact))
        comp_mode = quiet(lambda: ours_components(t_mode, True))
        # the exact reference on every non-void pixel
        y = np.concatenate([f[1].ravel() for f in frames])
        s = np.concatenate([f[0].ravel() for f in frames])
        s, y = s[y != 255], y[y != 255]
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        ref = dict(ap=average_precision_score(y, s),
                   auroc=roc_auc_score(y, s),
                   fpr95=float(fpr[np.searchsorted(tpr, 0.95)]))
        del s, y, fpr, tpr
        got = dict(
            smiyc=dict(ap=float(theirs.area_PRC),
                       auroc=float(theirs.area_ROC),
                       fpr95=float(theirs.tpr95_fpr)),
            ours={k: ours[k] for k in ('ap', 'auroc', 'fpr95')})
        print(f'\n{kind} scores')
        print(f'{"":34s} {"SMIYC code":>11s} {"mmseg_ood":>11s} '
              f'{"ratio":>7s}')
        for label, a, b in (
                ('pixel metrics, s', 'smiyc_pixel', 'ours_pixel'),
                ('components at own threshold, s', 'smiyc_comp',
                 'ours_comp')):
            print(f'{label:34s} {med[a]:11.3f} {med[b]:11.3f} '
                  f'{med[a] / med[b]:6.1f}x')
        total_a = med['smiyc_pixel'] + med['smiyc_comp']
        total_b = med['ours_pixel'] + med['ours_comp']
        print(f'{"both, s":34s} {total_a:11.3f} {total_b:11.3f} '
              f'{total_a / total_b:6.1f}x')
        for label, a, b in (('pixel metrics, peak MiB', 'smiyc_pixel',
                             'ours_pixel'),
                            ('components, peak MiB', 'smiyc_comp',
                             'ours_comp')):
            print(f'{label:34s} {mem[a] / 2**20:11.1f} '
                  f'{mem[b] / 2**20:11.1f} {mem[a] / max(mem[b], 1):6.1f}x')
        print(f'{"SMIYC-mode threshold curve, s":34s} '
              f'{med["smiyc_pixel"]:11.3f} {med["ours_threshold"]:11.3f} '
              f'{med["smiyc_pixel"] / med["ours_threshold"]:6.1f}x  '
              '(theirs: its pixel pass)')
        print(f'{"SMIYC-mode components, s":34s} {med["smiyc_comp"]:11.3f} '
              f'{med["ours_comp_smiyc"]:11.3f} '
              f'{med["smiyc_comp"] / med["ours_comp_smiyc"]:6.1f}x')
        print(f'{"|error| vs sklearn":34s} {"AP":>11s} {"AUROC":>11s} '
              f'{"FPR95":>11s}')
        for side in ('smiyc', 'ours'):
            err = {k: abs(got[side][k] - ref[k]) for k in ref}
            name = 'SMIYC code' if side == 'smiyc' else 'mmseg_ood'
            print(f'{"  " + name:34s} {err["ap"]:11.2e} '
                  f'{err["auroc"]:11.2e} {err["fpr95"]:11.2e}')
        print(f'{"thresholds":34s} SMIYC {t_smiyc:.9g} (score >), mode '
              f'smiyc {t_mode:.9g} (>), exact {t_exact:.9g} (>=)')
        print(f'{"components":34s} {"sIoU":>11s} {"PPV":>11s} '
              f'{"mean F1":>11s}')
        rows = (('SMIYC code', comp_theirs.sIoU_gt, comp_theirs.prec_pred,
                 comp_theirs.f1_mean),
                ('mmseg_ood, smiyc mode', comp_mode['siou'],
                 comp_mode['ppv'], comp_mode['mean_f1']),
                ('mmseg_ood, exact (default)', comp_exact['siou'],
                 comp_exact['ppv'], comp_exact['mean_f1']))
        for name, *vals in rows:
            print(f'{"  " + name:34s} ' +
                  ' '.join(f'{v:11.6f}' for v in vals))
        diff = max(abs(a - b) for a, b in zip(rows[0][1:], rows[1][1:]))
        print(f'{"  |smiyc mode - SMIYC code|, max":34s} {diff:11.2e}')
        assert SIZE_PRESETS[args.preset] == (seg_cfg.thresh_segsize,
                                             seg_cfg.thresh_instsize)
    return 0


if __name__ == '__main__':
    sys.exit(main())
