"""Training-step time of the OOD training variants relative to baseline CE.

Builds the synthetic objects configs (baseline, IBE, SCrIBE, entropy
maximization, UOI + CE: DeepLabV3+ R18, batch 8 of 128x128) and times one
full training step (data preprocessor, forward, losses, backward, AdamW
step) on the same random batch; entropy maximization's batch carries
outlier pixels (254) like a mixed batch. Variants run interleaved in one
process, round after round, so machine noise hits all alike; the ratio of
medians to the baseline is printed (goal: <= 1.03).
``uoi-ce`` is the shipped config (both terms in ``MonitoredLoss``, the
gradient clipped); ``uoi-ce-unmonitored`` is the same losses unwrapped and
unclipped, so the two rows give the cost of the monitoring and clipping.
``--device`` (default ``cuda`` when available, else ``cpu``) holds the
model; the data preprocessor moves each batch there, inside the timed step,
as the Runner does; CUDA is synchronized around each step. ``--variants``
picks a subset (the baseline always runs: it is the reference).
``--json FILE`` also writes the numbers, the settings and the run record.

    python benchmarks/training_step_time.py [--rounds 15] [--batch 8]
        [--device cpu|cuda] [--variants ibe entropy-max] [--json FILE]
"""
import argparse
import os.path as osp
import statistics
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VARIANTS = ('baseline', 'ibe', 'scribe', 'entropy-max', 'uoi-ce',
            'uoi-ce-unmonitored')


def config_path(variant):
    variant = variant.replace('-unmonitored', '')
    tag = '' if variant == 'baseline' else f'-{variant}'
    return osp.join(
        REPO, 'configs', 'synthetic',
        f'deeplabv3plus_r18-d8{tag}_1xb8-300it_synthetic-objects-128x128.py')


def build(variant, device='cpu'):
    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    import mmseg_ood  # noqa: F401
    from mmseg.registry import MODELS
    cfg = Config.fromfile(config_path(variant))
    if variant.endswith('-unmonitored'):
        cfg.model.decode_head.loss_decode = [
            loss.loss for loss in cfg.model.decode_head.loss_decode]
        cfg.optim_wrapper.clip_grad = None
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def make_batch(batch, size, outliers):
    import torch
    from mmengine.structures import PixelData

    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for i in range(batch):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g,
                                    dtype=torch.uint8))
        label = torch.randint(0, 6, (1, size, size), generator=g)
        if outliers and i == 0:  # ~1 in 10 images is a proxy image
            label[:] = 255
            label[:, :size // 3, :size // 3] = 254
        s = SegDataSample(metainfo=dict(img_shape=(size, size),
                                        ori_shape=(size, size),
                                        pad_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=label)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def step(model, optim, data):
    model.train_step(data, optim)


def timed_step(model, optim, data, cuda):
    """Seconds of one :func:`step`, CUDA synchronized before and after."""
    import torch
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    step(model, optim, data)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=15)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--warmup', type=int, default=2)
    import torch
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available()
                        else 'cpu')
    parser.add_argument('--variants', nargs='+', choices=VARIANTS,
                        default=list(VARIANTS))
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cuda = args.device.startswith('cuda')
    variants = ['baseline'] + [v for v in args.variants if v != 'baseline']
    runs = {}
    for v in variants:
        model, optim = build(v, args.device)
        data = make_batch(args.batch, args.size, v == 'entropy-max')
        for _ in range(args.warmup):
            step(model, optim, data)
        runs[v] = (model, optim, data, [])
    device = str(next(runs['baseline'][0].parameters()).device)
    for _ in range(args.rounds):
        for v, (model, optim, data, times) in runs.items():
            times.append(timed_step(model, optim, data, cuda))
    base = statistics.median(runs['baseline'][3])
    print(f'training step, DeepLabV3+ R18, batch {args.batch} x '
          f'{args.size}x{args.size}, {args.rounds} interleaved rounds, '
          f'device {device}, {torch.get_num_threads()} threads')
    print(f"{'variant':<19} {'median s':>9} {'min s':>7} {'ratio':>6}")
    results = {}
    for v, (_, _, _, times) in runs.items():
        med = statistics.median(times)
        results[v] = dict(seconds=times, median_s=med, min_s=min(times),
                          ratio=med / base)
        print(f'{v:<19} {med:9.3f} {min(times):7.3f} {med / base:6.3f}')
    if args.json:
        from bench_record import write_results
        write_results(args.json, 'training_step_time', dict(
            settings=dict(rounds=args.rounds, batch=args.batch,
                          size=args.size, warmup=args.warmup,
                          device=device, threads=torch.get_num_threads()),
            results=results))


if __name__ == '__main__':
    main()
