"""Overhead of OOD scoring: (forward + all scorers) / (forward alone).

DeepLabV3+ R50-D8 from mmseg's model-zoo config, random weights, BN, one
image of 512x1024 by default. Both variants run interleaved in one process
(A, B, A, B, ...) after a warm-up, so the machine's load affects both alike;
the ratio of medians is printed.

    python benchmarks/scoring_overhead.py [--size 512 1024] [--repeats 7]
        [--device cpu|cuda]
"""
import argparse
import os.path as osp
import statistics
import time

import torch


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--size', type=int, nargs=2, default=[512, 1024])
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--config', default='deeplabv3plus/'
                   'deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024.py')
    return p.parse_args()


def build_model(config, device):
    import mmseg
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', config)
    cfg = Config.fromfile(path)
    cfg.model.pretrained = None
    cfg.model.data_preprocessor.pop('size', None)
    for key in ('backbone', 'decode_head', 'auxiliary_head'):
        if cfg.model.get(key) and 'norm_cfg' in cfg.model[key]:
            cfg.model[key].norm_cfg = dict(type='BN', requires_grad=True)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(device).eval()


def main():
    args = parse_args()
    import mmseg_ood  # noqa: F401
    from mmseg.structures import SegDataSample
    from mmseg_ood.models import OODScoring
    from mmseg_ood.scorers import StandardizedMaxLogit

    torch.set_grad_enabled(False)
    model = build_model(args.config, args.device)
    h, w = args.size
    img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8)

    def data():
        return dict(inputs=[img], data_samples=[SegDataSample(
            metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))])

    sml = StandardizedMaxLogit().fit([torch.randn(1, 19, 64, 128) * 3])
    scorers = ['msp', 'entropy', 'max_logit', sml, 'energy', 'norm',
               'n_max_logit', 'n_energy']
    scoring = OODScoring(model, scorers)

    def sync():
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()

    def run(scored):
        sync()
        t0 = time.perf_counter()
        if scored:
            with scoring:
                out = model.test_step(data())
            assert len(out[0].ood_scores) == len(scorers)
        else:
            model.test_step(data())
        sync()
        return time.perf_counter() - t0

    run(False), run(True)  # warm-up
    plain, scored = [], []
    for _ in range(args.repeats):
        plain.append(run(False))
        scored.append(run(True))
    mp, ms = statistics.median(plain), statistics.median(scored)
    print(f'model: {args.config}  input: {h}x{w}  device: {args.device}  '
          f'threads: {torch.get_num_threads()}  repeats: {args.repeats}')
    print(f'scorers ({len(scorers)}): ' + ', '.join(scoring.names))
    print(f'forward alone        median {mp:.4f} s  '
          f'(min {min(plain):.4f})')
    print(f'forward + scorers    median {ms:.4f} s  '
          f'(min {min(scored):.4f})')
    print(f'ratio (median)       {ms / mp:.4f}')
    print(f'ratio (min)          {min(scored) / min(plain):.4f}')


if __name__ == '__main__':
    main()
