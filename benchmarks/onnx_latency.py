"""onnxruntime vs PyTorch CPU latency of the exported model + scorer.

Same model (DeepLabV3+ R18 of the synthetic config, random weights saved
as a checkpoint, the energy scorer and a threshold from a calibration
file), same graph on both sides: ``ExportableOODSegmentor`` (preprocessing,
whole inference, score, threshold, prediction) run by PyTorch in
``no_grad``, and its ONNX export (``tools/export_onnx.py``'s
``export_onnx``, TorchScript exporter, dynamic H and W) run by onnxruntime's
CPU provider. Both use ``--threads`` threads (torch.set_num_threads;
onnxruntime intra-op threads, one inter-op thread). One warm-up run each,
then PyTorch and onnxruntime alternate ``--repeats`` times per size; the
medians and the ratio (PyTorch / onnxruntime, > 1: onnxruntime is faster)
are printed, with the largest |score difference| seen.

    python benchmarks/onnx_latency.py [--sizes 512x1024 1024x2048]
        [--repeats 5] [--threads 2]
"""
import argparse
import os.path as osp
import statistics
import tempfile
import time
import warnings

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'synthetic',
                  'deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py')


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--sizes', nargs='+', default=['512x1024', '1024x2048'])
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args()
    warnings.filterwarnings('ignore')

    import numpy as np
    import onnxruntime as ort
    import torch
    from mmengine.config import Config
    from random_checkpoint import random_checkpoint

    import mmseg_ood  # noqa: F401
    from mmseg_ood.apis import init_model
    from mmseg_ood.deploy.onnx_export import (ExportableOODSegmentor,
                                              export_onnx)
    from mmseg_ood.formats.threshold_file import OODCalibration
    from mmseg_ood.utils import file_sha256
    torch.set_num_threads(args.threads)
    tmp = tempfile.mkdtemp(prefix='mmseg_ood_onnx_bench_')
    ckpt = random_checkpoint(Config.fromfile(CONFIG), tmp)
    calib = OODCalibration(
        scorer_name='energy', scorer_config={'type': 'energy'},
        threshold=-2.0, rule='id_fpr', target=0.01, dataset='none',
        checkpoint_sha256=file_sha256(ckpt),
        model=dict(checkpoint=ckpt, num_classes=6)).save(
            osp.join(tmp, 'calibration.json'))
    out = osp.join(tmp, 'model.onnx')
    t0 = time.perf_counter()
    export_onnx(CONFIG, ckpt, calib, out, shape=(128, 256), dynamic=True,
                check=False)
    export_s = time.perf_counter() - t0

    model = init_model(CONFIG, ckpt)
    module = ExportableOODSegmentor(model, 'energy', -2.0).eval().attach()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    sess = ort.InferenceSession(out, options,
                                providers=['CPUExecutionProvider'])
    print(f'model: DeepLabV3+ R18 (random weights) + energy + threshold, '
          f'threads: {args.threads} (torch {torch.__version__}, '
          f'onnxruntime {ort.__version__}), repeats: {args.repeats}, '
          f'export: {export_s:.1f} s')
    rng = np.random.default_rng(0)
    for size in args.sizes:
        h, w = map(int, size.split('x'))
        img = rng.integers(0, 256, (1, 3, h, w)).astype(np.float32)
        timgs = torch.from_numpy(img)

        def run_torch():
            with torch.no_grad():
                return [t.numpy() for t in module(timgs)]

        def run_ort():
            return sess.run(None, {'img': img})

        runs = {'pytorch': [], 'onnxruntime': []}
        fns = {'pytorch': run_torch, 'onnxruntime': run_ort}
        outs = {k: f() for k, f in fns.items()}  # warm-up
        for _ in range(args.repeats):
            for kind, fn in fns.items():
                t = time.perf_counter()
                fn()
                runs[kind].append(time.perf_counter() - t)
        diff = float(np.abs(outs['pytorch'][1] - outs['onnxruntime'][1])
                     .max())
        med = {k: statistics.median(v) for k, v in runs.items()}
        for kind, v in runs.items():
            print(f'{size:>10s} {kind:12s} median {med[kind] * 1e3:8.1f} ms'
                  '  (runs: ' + ', '.join(f'{t * 1e3:.0f}' for t in v)
                  + ')')
        print(f'{size:>10s} ratio pytorch / onnxruntime '
              f'{med["pytorch"] / med["onnxruntime"]:.3f}, max |score '
              f'diff| {diff:.2e}')
    module.detach()


if __name__ == '__main__':
    main()
