"""``ExtremeImagesHook``: keeps the images of highest and lowest per-image
AP (checked against sklearn's ``average_precision_score`` on every image)
in bounded memory, and draws them."""
import os
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from sklearn.metrics import average_precision_score

from mmseg_ood.engine.hooks import ExtremeImagesHook
from mmseg_ood.errors import InvalidValueError


def _samples(tmp_path, n=9, shape=(24, 40)):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        lab = np.zeros(shape, np.uint8)
        lab[4:12, 3 + i:15 + i] = 1
        lab[-3:, :] = 255
        noise = 0.2 + 0.15 * i  # later images: noisier scores, lower AP
        score = (lab == 1) + noise * rng.standard_normal(shape)
        path = str(tmp_path / f'img{i}.png')
        cv2.imwrite(path, rng.integers(0, 255, shape + (3, ), np.uint8))
        s = SegDataSample(metainfo=dict(img_path=path))
        s.gt_sem_seg = PixelData(data=torch.from_numpy(lab)[None])
        s.pred_sem_seg = PixelData(data=torch.zeros((1, ) + shape,
                                                    dtype=torch.long))
        s.set_field(dict(energy=torch.from_numpy(score).float(),
                         msp=torch.from_numpy(-score).float()),
                    'ood_scores')
        out.append((s, lab, score))
    # no OOD pixels: never ranked
    s, lab, score = out[-1]
    s.gt_sem_seg = PixelData(data=torch.zeros((1, ) + shape,
                                              dtype=torch.uint8))
    return out


def _ap(lab, score):
    keep = lab != 255
    return average_precision_score(lab[keep], score[keep])


def test_keeps_the_highest_and_lowest_ap_images(tmp_path):
    samples = _samples(tmp_path)
    hook = ExtremeImagesHook(out_dir=str(tmp_path / 'out'), scorer='energy',
                             num=2, max_side=20)
    runner = SimpleNamespace(model=SimpleNamespace(dataset_meta={}))
    hook.before_test(runner)
    for k in range(0, len(samples), 4):  # batches of 4
        hook.after_test_iter(runner, k, outputs=[s for s, _, _ in
                                                 samples[k:k + 4]])
    hook.after_test_epoch(runner)
    ranked = sorted(((_ap(lab, sc), s.img_path) for s, lab, sc in
                     samples[:-1]), reverse=True)
    files = sorted(os.listdir(tmp_path / 'out'))
    want = [(f'highest_{i}', os.path.basename(p), ap)
            for i, (ap, p) in enumerate(ranked[:2], 1)] + \
        [(f'lowest_{i}', os.path.basename(p), ap)
         for i, (ap, p) in enumerate(ranked[::-1][:2], 1)]
    got = []
    for f in files:  # <which>_<i>_AP<ap>_<image>
        which, i, ap, image = f.split('_', 3)
        got.append((f'{which}_{i}', image, float(ap[2:]) / 100))
    assert [g[:2] for g in got] == sorted(w[:2] for w in want)
    # the histogram AP of the package (2^20 bins) vs sklearn's exact one
    for (_, _, ap), (_, _, exact) in zip(got, sorted(want)):
        assert ap == pytest.approx(exact, abs=2e-4)
    # bounded: two per end, subsampled to at most 20 px
    assert len(hook._high) == len(hook._low) == 2
    assert all(max(e['labels'].shape) <= 20 for _, _, e in hook._high)


def test_an_unknown_scorer_and_bad_sizes_are_named(tmp_path):
    samples = _samples(tmp_path, n=2)
    hook = ExtremeImagesHook(out_dir=str(tmp_path), scorer='nope')
    with pytest.raises(InvalidValueError, match="'nope' is not in"):
        hook.after_test_iter(None, 0, outputs=[samples[0][0]])
    with pytest.raises(InvalidValueError, match='`num` must be an int'):
        ExtremeImagesHook(out_dir=str(tmp_path), num=0)


def test_an_image_seen_twice_counts_once(tmp_path):
    """The padding repeat of distributed sampling: the same image twice
    takes one place at each end, not two."""
    samples = _samples(tmp_path, n=4)[:3]
    hook = ExtremeImagesHook(out_dir=str(tmp_path / 'out'), num=2)
    runner = SimpleNamespace(model=SimpleNamespace(dataset_meta={}))
    hook.before_test(runner)
    first = samples[0][0]
    hook.after_test_iter(runner, 0, outputs=[s for s, _, _ in samples] +
                         [first])
    for heap in (hook._high, hook._low):
        paths = [e['img_path'] for _, _, e in heap]
        assert len(paths) == len(set(paths)) == 2
