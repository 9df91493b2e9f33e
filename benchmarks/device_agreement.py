"""The same checkpoint on several devices: score maps and OOD metrics agree?

One checkpoint (DeepLabV3+ R18 of the synthetic config, random weights
saved with ``random_checkpoint``), the same synthetic OOD images (the
street variant of ``make_synthetic_benchmark`` at ``--size``, inferred at
that full resolution) and every scorer of ``--scorers``, run on each of
``--devices`` through ``score_image``; per device, each scorer's AUROC, AP
and FPR@95 over all images (``PixelOODAccumulator``). Against the first
device (the reference), per scorer: the largest absolute difference of the
score maps, the same relative to the largest reference score, the metric
differences, and the share of pixels whose predicted class differs.
A device agrees when every relative score difference is at most
``--rtol`` and every metric difference at most ``--metric-atol``.

CUDA convolutions use TF32 by default (cuDNN's ``allow_tf32``), which
rounds their inputs to 10 mantissa bits: ``--tf32 off`` computes in full
float32 on the GPU, ``both`` runs the CUDA devices twice (``cuda`` with
TF32 as configured by torch, ``cuda/fp32`` without).

    python benchmarks/device_agreement.py [--devices cpu cuda]
        [--images 4] [--size 256 512] [--tf32 default|off|both]
        [--rtol 1e-3] [--metric-atol 1e-3] [--json FILE]
"""
import argparse
import glob
import os.path as osp
import tempfile
import time

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'synthetic',
                  'deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py')
SCORERS = ['msp', 'entropy', 'max_logit', 'energy', 'norm', 'n_max_logit',
           'n_energy']
METRICS = ('auroc', 'ap', 'fpr95')

#: torch's TF32 settings at start (cuDNN convolutions, CUDA matmuls).
TF32_DEFAULT = (torch.backends.cudnn.allow_tf32,
                torch.backends.cuda.matmul.allow_tf32)


def load_images(root):
    """(image path, OOD labels ``(H, W)`` uint8) of the synthetic OOD
    split under ``root``."""
    import cv2
    out = []
    for name in sorted(osp.basename(p) for p in
                       glob.glob(osp.join(root, 'ood', 'images', '*.png'))):
        stem = osp.splitext(name)[0]
        labels = cv2.imread(osp.join(root, 'ood', 'labels_masks',
                                     f'{stem}_labels_semantic.png'),
                            cv2.IMREAD_UNCHANGED)
        out.append((osp.join(root, 'ood', 'images', name), labels))
    return out


def run_device(device, fp32, ckpt, images, size, scorers):
    """Score maps, predictions and metrics of every image on ``device``."""
    from mmengine.config import Config

    from mmseg_ood.apis import init_model, score_image
    from mmseg_ood.evaluation import PixelOODAccumulator
    if device.startswith('cuda'):
        torch.backends.cudnn.allow_tf32 = not fp32 and TF32_DEFAULT[0]
        torch.backends.cuda.matmul.allow_tf32 = not fp32 and TF32_DEFAULT[1]
    cfg = Config.fromfile(CONFIG)
    h, w = size
    for t in cfg.test_pipeline:
        if t['type'] == 'Resize':  # infer at full resolution, as deployed
            t['scale'] = (w, h)
    model = init_model(cfg, ckpt, device=device)
    acc = {n: PixelOODAccumulator(name=n) for n in scorers}
    maps, preds = {n: [] for n in scorers}, []
    t0 = time.perf_counter()
    for path, labels in images:
        scores, result = score_image(model, path, scorers,
                                     return_result=True)
        preds.append(result.pred_sem_seg.data[0].cpu().numpy())
        for n in scorers:
            maps[n].append(scores[n])
            acc[n].update(scores[n], labels)
    seconds = time.perf_counter() - t0
    metrics = {n: {k: float(acc[n].compute()[k]) for k in METRICS}
               for n in scorers}
    tf32 = dict(cudnn=torch.backends.cudnn.allow_tf32,
                matmul=torch.backends.cuda.matmul.allow_tf32) \
        if device.startswith('cuda') else None
    return dict(maps=maps, preds=preds, metrics=metrics, seconds=seconds,
                tf32=tf32)



def compare(ref, other, scorers):
    """Per scorer: score-map and metric differences of ``other`` vs
    ``ref``; the share of pixels with another predicted class."""
    rows = {}
    for n in scorers:
        diff = max(float(np.abs(a - b).max())
                   for a, b in zip(ref['maps'][n], other['maps'][n]))
        scale = max(float(np.abs(a).max()) for a in ref['maps'][n])
        rows[n] = dict(max_abs_diff=diff,
                       max_rel_diff=diff / max(scale, 1e-30),
                       metric_diff={k: abs(other['metrics'][n][k] -
                                           ref['metrics'][n][k])
                                    for k in METRICS})
    changed = sum(int((a != b).sum()) for a, b in zip(ref['preds'],
                                                      other['preds']))
    total = sum(a.size for a in ref['preds'])
    return rows, changed / total


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--devices', nargs='+',
                   default=['cpu'] + ['cuda'] * torch.cuda.is_available())
    p.add_argument('--images', type=int, default=4)
    p.add_argument('--size', type=int, nargs=2, default=[256, 512])
    p.add_argument('--scorers', nargs='+', default=SCORERS)
    p.add_argument('--tf32', choices=['default', 'off', 'both'],
                   default='default')
    p.add_argument('--rtol', type=float, default=1e-3)
    p.add_argument('--metric-atol', type=float, default=1e-3)
    p.add_argument('--json', help='also write the results to this file')
    args = p.parse_args()
    from mmengine.config import Config
    from random_checkpoint import random_checkpoint

    import mmseg_ood  # noqa: F401
    from mmseg_ood.synthetic import make_synthetic_benchmark
    tmp = tempfile.mkdtemp(prefix='mmseg_ood_agree_')
    roots = make_synthetic_benchmark(
        tmp, variants='street', num_train=0, num_val=1, num_ood=args.images,
        num_image_ood=0, num_proxy=0, size=tuple(args.size))
    ckpt = random_checkpoint(Config.fromfile(CONFIG), tmp)
    images = load_images(roots['street'])

    runs = []  # (label, device, full float32)
    for dev in args.devices:
        if not dev.startswith('cuda'):
            runs.append((dev, dev, False))
            continue
        if args.tf32 in ('default', 'both'):
            runs.append((dev, dev, False))
        if args.tf32 in ('off', 'both'):
            runs.append((f'{dev}/fp32', dev, True))
    # a device named twice (``cpu cpu``: a check of the script) runs twice
    runs = [(label if [r[0] for r in runs[:i]].count(label) == 0 else
             f'{label}#{i + 1}', dev, fp32)
            for i, (label, dev, fp32) in enumerate(runs)]
    out = {label: run_device(dev, fp32, ckpt, images, args.size,
                             args.scorers) for label, dev, fp32 in runs}
    ref_label = runs[0][0]
    ref = out[ref_label]
    print(f'images: {len(images)} at {args.size[0]}x{args.size[1]}, model: '
          'DeepLabV3+ R18 (random weights), reference: ' + ref_label)
    results = {}
    for label, _, _ in runs[1:]:
        rows, changed = compare(ref, out[label], args.scorers)
        agree = all(r['max_rel_diff'] <= args.rtol and
                    max(r['metric_diff'].values()) <= args.metric_atol
                    for r in rows.values())
        results[label] = dict(scorers=rows, pred_changed=changed,
                              agree=agree, seconds=out[label]['seconds'],
                              tf32=out[label]['tf32'])
        print(f'\n{label} vs {ref_label}  (TF32 {out[label]["tf32"]}, '
              f'{changed:.2e} of the pixels change class, '
              f'{"agree" if agree else "DISAGREE"})')
        print(f'{"scorer":12s} {"max |d|":>10s} {"rel":>10s} '
              + ' '.join(f'{"d " + k:>10s}' for k in METRICS))
        for n, r in rows.items():
            print(f'{n:12s} {r["max_abs_diff"]:10.2e} '
                  f'{r["max_rel_diff"]:10.2e} ' +
                  ' '.join(f'{r["metric_diff"][k]:10.2e}' for k in METRICS))
    print('\nmetrics per device (AUROC / AP / FPR95):')
    for label in out:
        print(f'{label:10s} ' + '  '.join(
            f'{n} ' + '/'.join(f'{out[label]["metrics"][n][k]:.4f}'
                               for k in METRICS) for n in args.scorers))
    if args.json:
        from bench_record import write_results
        write_results(args.json, 'device_agreement', dict(
            settings=dict(devices=args.devices, images=len(images),
                          size=args.size, scorers=args.scorers,
                          tf32=args.tf32, rtol=args.rtol,
                          metric_atol=args.metric_atol, reference=ref_label),
            metrics={label: o['metrics'] for label, o in out.items()},
            seconds={label: o['seconds'] for label, o in out.items()},
            comparisons=results,
            agree=all(r['agree'] for r in results.values())))


if __name__ == '__main__':
    main()
