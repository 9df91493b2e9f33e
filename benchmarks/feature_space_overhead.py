"""Overhead of each feature-space scorer: (forward + scorer) / (forward).

A model-zoo DeepLabV3+ (random weights, BN) on one image; the statistics
are fitted on the embeddings of a few other random images first
(``FeatureStatistics``, the fit ``ood_test --fit-on`` runs). Each scorer
runs alone beside the plain forward, interleaved (A, B, A, B, ...) after a
warm-up, so the machine's load affects both alike; the ratio of medians
is printed per scorer, with ``energy`` as the reference of a logit score.

    python benchmarks/feature_space_overhead.py [--size 512 1024]
        [--repeats 5] [--device cpu|cuda] [--backbone r18|r50]
        [--scorers energy react ash dice vim mahalanobis rmd knn odin]
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

CONFIGS = {
    'r18': 'deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-'
    '512x1024.py',
    'r50': 'deeplabv3plus/deeplabv3plus_r50-d8_4xb2-40k_cityscapes-'
    '512x1024.py',
}
SCORERS = ['energy', 'react', 'ash', 'dice', 'vim', 'mahalanobis', 'rmd',
           'knn', 'odin']


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--size', type=int, nargs=2, default=[512, 1024])
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--backbone', choices=sorted(CONFIGS), default='r18')
    p.add_argument('--fit-images', type=int, default=2)
    p.add_argument('--scorers', nargs='+', default=SCORERS)
    return p.parse_args()


def main():
    args = parse_args()
    import mmseg_ood  # noqa: F401
    from mmseg.structures import SegDataSample
    from scoring_overhead import build_model, interleaved

    from mmseg_ood.models import OODScoring
    from mmseg_ood.scorers import (BaseScorer, FeatureSpaceScorer,
                                   FeatureStatistics, StatisticsSpec,
                                   build_scorer)
    torch.set_grad_enabled(False)
    model = build_model(CONFIGS[args.backbone], args.device)
    h, w = args.size
    gen = torch.Generator().manual_seed(0)

    def data(seed=0):
        img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8,
                            generator=gen.manual_seed(seed))
        return dict(inputs=[img], data_samples=[SegDataSample(
            metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))])

    scorers = {n: build_scorer(n) for n in args.scorers}
    spec = StatisticsSpec.union(scorers.values())
    stats = FeatureStatistics(dict(spec))

    class Recorder(BaseScorer):
        name = 'recorder'
        requires_embeddings = True

        def score(self, inputs):
            stats.partial_fit(inputs)
            return inputs.logits[:, 0] * 0

    t0 = time.perf_counter()
    with OODScoring(model, [Recorder()]):
        for i in range(args.fit_images):
            model.test_step(data(100 + i))
    fit_s = time.perf_counter() - t0
    for s in scorers.values():
        if isinstance(s, FeatureSpaceScorer):
            s.set_statistics(stats)

    print(f'model: {CONFIGS[args.backbone]}  input: {h}x{w}  device: '
          f'{args.device}  threads: {torch.get_num_threads()}  repeats: '
          f'{args.repeats}')
    print(f'fit: {args.fit_images} images, {stats.pixels} pixels, D='
          f'{stats.dim}, spec {dict(spec)}, {fit_s:.2f} s with the forward '
          'passes')
    print('| scorer | forward alone (s, median) | forward + scorer (s, '
          'median) | ratio (median) | ratio (min) |')
    print('|---|---|---|---|---|')
    for name, scorer in scorers.items():
        scoring = OODScoring(model, {name: scorer})

        def run_scored():
            with scoring:
                model.test_step(data())

        plain, scored = interleaved(lambda: model.test_step(data()),
                                    run_scored, args.repeats, args.device)
        mp, ms = statistics.median(plain), statistics.median(scored)
        print(f'| {name} | {mp:.4f} | {ms:.4f} | {ms / mp:.3f} | '
              f'{min(scored) / min(plain):.3f} |', flush=True)


if __name__ == '__main__':
    main()
