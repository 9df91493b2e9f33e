"""Overhead of OOD scoring: (forward + all scorers) / (forward alone).

Model-zoo configs with random weights and BN, one image of 512x1024 by
default: DeepLabV3+ R50-D8 (a 1x1 linear classifier: every scorer,
embedding scorers included) and Mask2Former R50 (mask classification: the
logit scorers, ``rba`` and ``no_object``). For each model both variants run
interleaved in one process (A, B, A, B, ...) after a warm-up, so the
machine's load affects both alike; the ratio of medians is printed, and a
summary line per model at the end.

``--amp fp16|bf16`` runs both variants under ``torch.autocast`` of that
dtype (forward and scorers alike; the scorers compute in float32 inside
it); ``none`` (default) runs in float32. ``--json FILE`` also writes the
numbers, the settings and the run record.

    python benchmarks/scoring_overhead.py [--size 512 1024] [--repeats 7]
        [--device cpu|cuda] [--models deeplabv3plus mask2former]
        [--amp none|fp16|bf16] [--json FILE]
"""
import argparse
import contextlib
import os.path as osp
import statistics
import time

import torch

# model -> (mmseg model-zoo config, scorers besides the fitted sml)
MODELS = {
    'deeplabv3plus': (
        'deeplabv3plus/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024.py',
        ['msp', 'entropy', 'max_logit', 'energy', 'norm', 'n_max_logit',
         'n_energy']),
    'mask2former': (
        'mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
        ['msp', 'entropy', 'max_logit', 'energy', 'rba', 'no_object']),
}

#: ``--amp`` -> the autocast dtype (``None``: float32, no autocast).
AMP = dict(none=None, fp16=torch.float16, bf16=torch.bfloat16)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--size', type=int, nargs=2, default=[512, 1024])
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--models', nargs='+', choices=sorted(MODELS),
                   default=list(MODELS))
    p.add_argument('--amp', choices=sorted(AMP), default='none',
                   help='torch.autocast dtype around forward and scorers')
    p.add_argument('--json', help='also write the results to this file')
    return p.parse_args()


def autocast(device, amp):
    """``torch.autocast`` of ``--amp`` on ``device`` (a null context for
    ``none``)."""
    if AMP[amp] is None:
        return contextlib.nullcontext()
    return torch.autocast(device.split(':')[0], dtype=AMP[amp])


def build_model(config, device):
    import mmseg
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', config)
    cfg = Config.fromfile(path)
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    cfg.model.data_preprocessor.pop('size', None)
    from mmseg_ood.utils import sync_bn_to_bn
    sync_bn_to_bn(cfg.model)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(device).eval()


def interleaved(plain, scored, repeats, device):
    """Seconds of ``plain()`` and ``scored()``, each called ``repeats``
    times alternately (A, B, A, B, ...) after one warm-up call of each,
    with CUDA synchronized around each call."""
    def timed(call):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        call()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    timed(plain), timed(scored)  # warm-up
    a, b = [], []
    for _ in range(repeats):
        a.append(timed(plain))
        b.append(timed(scored))
    return a, b


def measure(name, args):
    """Forward alone and forward + scorers, interleaved; the two medians."""
    from mmseg.structures import SegDataSample
    from mmseg_ood.models import OODScoring
    from mmseg_ood.scorers import StandardizedMaxLogit

    config, names = MODELS[name]
    model = build_model(config, args.device)
    h, w = args.size
    img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8)

    def data():
        return dict(inputs=[img], data_samples=[SegDataSample(
            metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))])

    sml = StandardizedMaxLogit().fit([torch.randn(1, 19, 64, 128) * 3])
    scorers = names[:3] + [sml] + names[3:]
    scoring = OODScoring(model, scorers)

    def run_plain():
        with autocast(args.device, args.amp):
            model.test_step(data())

    def run_scored():
        with scoring, autocast(args.device, args.amp):
            out = model.test_step(data())
        assert len(out[0].ood_scores) == len(scorers)

    plain, scored = interleaved(run_plain, run_scored, args.repeats,
                                args.device)
    mp, ms = statistics.median(plain), statistics.median(scored)
    print(f'\nmodel: {config}  input: {h}x{w}  device: {args.device}  '
          f'threads: {torch.get_num_threads()}  repeats: {args.repeats}  '
          f'amp: {args.amp}')
    print(f'head: {type(model.decode_head).__name__}  scorers '
          f'({len(scorers)}): ' + ', '.join(scoring.names))
    print(f'forward alone        median {mp:.4f} s  '
          f'(min {min(plain):.4f})')
    print(f'forward + scorers    median {ms:.4f} s  '
          f'(min {min(scored):.4f})')
    print(f'ratio (median)       {ms / mp:.4f}')
    print(f'ratio (min)          {min(scored) / min(plain):.4f}')
    return dict(config=config, head=type(model.decode_head).__name__,
                scorers=list(scoring.names), plain_s=plain, scored_s=scored,
                plain_median_s=mp, scored_median_s=ms, ratio_median=ms / mp,
                ratio_min=min(scored) / min(plain))


def main():
    args = parse_args()
    import mmseg_ood  # noqa: F401
    torch.set_grad_enabled(False)
    results = {name: measure(name, args) for name in args.models}
    print(f'\n== summary (goal <= 1.05), amp: {args.amp} ==')
    for name, r in results.items():
        print(f'{name:14s} ratio median {r["ratio_median"]:.4f}  '
              f'min {r["ratio_min"]:.4f}')
    if args.json:
        from bench_record import write_results
        write_results(args.json, 'scoring_overhead', dict(
            settings=dict(size=args.size, repeats=args.repeats,
                          device=args.device, amp=args.amp,
                          threads=torch.get_num_threads()),
            results=results))


if __name__ == '__main__':
    main()
