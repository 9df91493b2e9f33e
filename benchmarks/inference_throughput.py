"""OODInferencer vs mmseg's MMSegInferencer, per image, nothing written.

What is timed is one ``inferencer(path)`` call per image file: reading and
decoding the file, the test pipeline, the forward pass and, on the OOD
side, scoring, the decision and relabelling. This is the inference inside
``tools/ood_infer.py`` (:func:`mmseg_ood.apis.ood_infer`), not the tool as
a whole: its input collection, model loading, progress bar, overlay
drawing and the writing of overlays, label maps, masks and score maps are
not measured.

Same model (DeepLabV3+ R18 of the synthetic config, random weights saved
as a checkpoint), same images (generated street scenes at ``--size``),
same test pipeline with its Resize set to the images' size (full-resolution
inference, as deployed), batch size 1, CPU. The OOD side adds the energy
score map, the ``score >= threshold`` decision and the ``ood_label``
relabelling (a calibration at the maps' median). Both inferencers live in
one process and alternate image by image (plain, ood, plain, ood, ...;
the order flips every round) over ``--repeats`` rounds of all images,
after one warm-up call each, so that load from other processes on a
shared machine falls on both alike; images/s are the medians over rounds,
the ratio is ood / plain. Nothing is
written (``out_dir`` unset), no overlay is drawn (``return_vis`` unset)
and no progress bar is shown: file output differs between the two (the
OOD side writes masks and score maps too) and is excluded from both.

    python benchmarks/inference_throughput.py [--images 8]
        [--size 512 1024] [--repeats 3]
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
    p.add_argument('--images', type=int, default=8)
    p.add_argument('--size', type=int, nargs=2, default=[512, 1024])
    p.add_argument('--repeats', type=int, default=3)
    args = p.parse_args()
    warnings.filterwarnings('ignore')

    import cv2
    import numpy as np
    import torch
    from mmengine.config import Config
    from random_checkpoint import random_checkpoint

    import mmseg_ood  # noqa: F401
    from mmseg.apis import MMSegInferencer
    from mmseg_ood.apis import OODInferencer, init_model, score_image
    from mmseg_ood.formats.threshold_file import OODCalibration
    from mmseg_ood.utils import file_sha256, safe_checkpoint_loading

    h, w = args.size
    tmp = tempfile.mkdtemp(prefix='mmseg_ood_infer_bench_')
    cfg = Config.fromfile(CONFIG)
    for t in cfg.test_dataloader.dataset.pipeline:
        if t['type'] == 'Resize':  # infer at full resolution, as deployed
            t['scale'] = (w, h)
    ckpt = random_checkpoint(cfg, tmp, meta=dict(dataset_meta=dict(
        classes=tuple(f'c{i}' for i in range(6)),
        palette=[[40 * i, 80, 160] for i in range(6)])))
    images = []
    for i in range(args.images):
        path = osp.join(tmp, f'{i:04d}.png')
        cv2.imwrite(path, render(i, h, w))
        images.append(path)

    plain_model = init_model(cfg, ckpt)
    energy = score_image(plain_model, images[0], ['energy'])['energy']
    calib = OODCalibration(
        scorer_name='energy', scorer_config=dict(type='energy'),
        threshold=float(np.median(energy)), rule='id_fpr', target=0.01,
        dataset='bench', checkpoint_sha256=file_sha256(ckpt),
        model=dict(checkpoint=ckpt, num_classes=6)).save(
            osp.join(tmp, 'calibration.json'))
    with safe_checkpoint_loading():
        plain = MMSegInferencer(Config(cfg.to_dict(), filename=CONFIG),
                                ckpt, device='cpu')
    ood = OODInferencer(Config(cfg.to_dict(), filename=CONFIG), ckpt,
                        calibration=calib, device='cpu')
    plain.show_progress = ood.show_progress = False
    pair = [('plain', plain), ('ood', ood)]
    for name, inf in pair:
        inf(images[:1])  # warm-up
    runs = dict(plain=[], ood=[])
    for r in range(args.repeats):
        spent = dict(plain=0.0, ood=0.0)
        for img in images:  # alternate per image, the order flipping
            for name, inf in (pair if r % 2 == 0 else pair[::-1]):
                t0 = time.perf_counter()
                out = inf(img)
                spent[name] += time.perf_counter() - t0
                assert out['predictions'] is not None
        for name in runs:
            runs[name].append(len(images) / spent[name])
    print(f'images: {args.images} at {h}x{w} (full-resolution inference), '
          'model: DeepLabV3+ R18 (random weights), CPU threads: '
          f'{torch.get_num_threads()}, repeats: {args.repeats}')
    med = {k: statistics.median(v) for k, v in runs.items()}
    for k, v in runs.items():
        print(f'{k:6s} images/s {med[k]:7.3f}   (runs: '
              + ', '.join(f'{r:.3f}' for r in v) + ')')
    print(f'ratio images/s (ood / plain)  {med["ood"] / med["plain"]:.3f}')


def render(seed, h, w):
    """A synthetic street scene (BGR uint8) at ``h`` x ``w``."""
    import numpy as np

    from mmseg_ood.synthetic.street import render_street
    scene = render_street(np.random.default_rng(seed), height=h, width=w)
    return (scene.image[..., ::-1] * 255).round().astype(np.uint8)


if __name__ == '__main__':
    main()
