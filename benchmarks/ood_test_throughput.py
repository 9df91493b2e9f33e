"""ood_test's pass (all scorers, OODMetric) vs what tools/test.py runs.

``--kinds`` picks what runs side by side (first = reference of the ratios):
``plain`` (tools/test.py: the model and IoUMetric), ``ood`` (ood_test's
pass: every scorer, OODMetric with best-F1 component metrics), ``export``
(``ood`` + the SMIYC export of the raw scores cast to float16, as before
the export transform existed), ``export-rank`` (``ood`` + the export
through the rank-preserving float16 transform + per-image metrics: what
``--export-smiyc DIR --per-image`` costs). The default compares ``plain``
and ``ood``; ``--kinds export export-rank`` measures the cost of the
transform and the per-image metrics. ``bootstrap`` is ``ood`` with
``--bootstrap 1000`` (per-image histograms and 1000 resampled curves per
scorer): ``--kinds ood bootstrap`` measures what the intervals cost.

Same model (DeepLabV3+ R18 of the synthetic config, random weights saved
as a checkpoint), same images (the synthetic OOD split generated at
``--size``), same test pipeline, inference at the images' full resolution
(as Cityscapes models are deployed). Each variant runs in its own process
(so that its peak memory is its own), alternating plain / ood / plain /
ood ..., and reports images/s of the Runner's test loop and the process'
peak resident memory; the ratios of the medians are printed. The Runner
puts the model on the GPU when CUDA is available (mmengine's
``get_device``), else on the CPU; the device is printed and recorded.
``--json FILE`` also writes the numbers, the settings and the run record.

    python benchmarks/ood_test_throughput.py [--images 16]
        [--size 512 1024] [--repeats 2] [--kinds plain ood] [--json FILE]
"""
import argparse
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'synthetic',
                  'deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py')


def worker(kind, ckpt, data_root, work_dir, size):
    from mmseg_ood.engine import EvaluationSession
    from mmseg_ood.datasets import load_dataset_preset
    session = EvaluationSession(
        CONFIG, ckpt, work_dir,
        cfg_options={'test_dataloader.num_workers': 0,
                     'default_hooks.logger.interval': 1000})
    h, w = map(int, size.split('x'))
    for t in session.cfg.test_dataloader.dataset.pipeline:
        if t['type'] == 'Resize':  # infer at full resolution, as deployed
            t['scale'] = (w, h)
    preset = load_dataset_preset('synthetic_ood')
    ds = dict(preset.dataset, data_root=data_root)
    session.runner  # build the model and load the checkpoint: not timed
    t0 = time.perf_counter()
    if kind != 'plain':
        # as tools/ood_test.py --export-smiyc: the raw cast through the
        # hook, the transformed export through the metric
        out = osp.join(work_dir, 'smiyc')
        hooks = [dict(type='SMIYCExportHook', out_dir=out,
                      dataset_name=preset.smiyc_name, spill_dir=work_dir,
                      transform='none')] if kind == 'export' else []
        export = dict(out_dir=out, dataset_name=preset.smiyc_name) \
            if kind == 'export-rank' else None
        result = session.run_pass(
            ds, scorers=['msp', 'entropy', 'max_logit', 'energy', 'norm',
                         'n_max_logit', 'n_energy'], ood_labels=True,
            metrics=[dict(type='OODMetric', component_threshold='best_f1',
                          component_preset=preset.component_preset,
                          per_image=kind == 'export-rank', export=export,
                          bootstrap=(dict(samples=1000)
                                     if kind == 'bootstrap' else None))],
            hooks=hooks, progress=False)
    else:  # what tools/test.py runs: the model and mmseg's IoUMetric
        result = session.run_pass(
            ds, ood_labels=True, progress=False,
            metrics=[dict(type='IoUMetric', iou_metrics=['mIoU'])])
    dt = time.perf_counter() - t0
    n = len(session.runner.test_dataloader.dataset)
    assert result.metrics
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    device = str(next(session.runner.model.parameters()).device)
    print(json.dumps(dict(kind=kind, images=n, seconds=dt,
                          images_per_s=n / dt, peak_mib=peak,
                          device=device)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=16)
    p.add_argument('--size', type=int, nargs=2, default=[512, 1024])
    p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--kinds', nargs='+', default=['plain', 'ood'],
                   choices=['plain', 'ood', 'export', 'export-rank',
                            'bootstrap'])
    p.add_argument('--json', help='also write the results to this file')
    p.add_argument('--worker', nargs=5,
                   metavar=('KIND', 'CKPT', 'ROOT', 'WORK', 'HxW'))
    args = p.parse_args()
    if args.worker:
        return worker(*args.worker)

    import torch
    from mmengine.config import Config
    from random_checkpoint import random_checkpoint

    import mmseg_ood  # noqa: F401
    from mmseg_ood.synthetic import make_synthetic_benchmark
    tmp = tempfile.mkdtemp(prefix='mmseg_ood_bench_')
    roots = make_synthetic_benchmark(
        tmp, variants='street', num_train=0, num_val=2,
        num_ood=args.images, num_image_ood=0, size=tuple(args.size))
    ckpt = random_checkpoint(Config.fromfile(CONFIG), tmp)
    env = dict(os.environ, MMSEG_OOD_DATA=tmp)
    runs = {k: [] for k in args.kinds}
    for _ in range(args.repeats):
        for kind in args.kinds:
            out = subprocess.run(
                [sys.executable, __file__, '--worker', kind, ckpt,
                 osp.join(roots['street'], 'ood'),
                 osp.join(tmp, f'work_{kind}'),
                 f'{args.size[0]}x{args.size[1]}'],
                capture_output=True, text=True, env=env, cwd=REPO)
            if out.returncode:
                sys.exit(out.stderr[-3000:])
            line = [ln for ln in out.stdout.splitlines()
                    if ln.startswith('{"kind"')][-1]
            runs[kind].append(json.loads(line))
    device = runs[args.kinds[0]][0]['device']
    print(f'images: {args.images} at {args.size[0]}x{args.size[1]} '
          '(full-resolution inference), '
          f'model: DeepLabV3+ R18 (random weights), device: {device}, '
          f'CPU threads: {torch.get_num_threads()}, repeats: {args.repeats}')
    med = {}
    for kind, rs in runs.items():
        ips = statistics.median(r['images_per_s'] for r in rs)
        mem = statistics.median(r['peak_mib'] for r in rs)
        med[kind] = (ips, mem)
        print(f'{kind:11s} images/s {ips:7.3f}   peak RSS {mem:8.1f} MiB   '
              f'(runs: ' + ', '.join(f"{r['images_per_s']:.3f}"
                                     for r in rs) + ')')
    ref = args.kinds[0]
    ratios = {}
    for kind in args.kinds[1:]:
        ratios[kind] = dict(images_per_s=med[kind][0] / med[ref][0],
                            peak_memory=med[kind][1] / med[ref][1])
        print(f'ratio images/s    ({kind} / {ref})  '
              f'{ratios[kind]["images_per_s"]:.3f}')
        print(f'ratio peak memory ({kind} / {ref})  '
              f'{ratios[kind]["peak_memory"]:.3f}')
    if args.json:
        from bench_record import write_results
        write_results(args.json, 'ood_test_throughput', dict(
            settings=dict(images=args.images, size=args.size,
                          repeats=args.repeats, kinds=args.kinds,
                          device=device),
            results=dict(runs=runs, reference=ref, ratios=ratios,
                         median_images_per_s={k: v[0]
                                              for k, v in med.items()},
                         median_peak_mib={k: v[1]
                                          for k, v in med.items()})))


if __name__ == '__main__':
    main()
