"""Degenerate shapes through the real code paths: 1x1, 1xW and Hx1 images
in the OODInferencer and tools/ood_infer.py (a tiny synthetic model), the
same label maps through ``LoadOODAnnotations`` (real files), and label
maps of those shapes or with no valid pixel in ``OODMetric``,
``PixelOODAccumulator`` and ``ComponentAccumulator`` (hand-made
arrays)."""
import os
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from conftest import SMALL_RESIZE_CONFIG
from mmseg_ood.errors import InvalidValueError, OODNotice
from mmseg_ood.evaluation import (ComponentAccumulator, OODMetric,
                                  PixelOODAccumulator)

THRESHOLD = 0.0
SHAPES = [(1, 1), (1, 9), (9, 1), (1, 60), (2, 2)]


@pytest.fixture(scope='module')
def model_files(tmp_path_factory):
    """A small-resize street config (as a plain and an OODSegmentor
    config) and a checkpoint of random weights."""
    from mmseg_ood.apis import init_model
    tmp = tmp_path_factory.mktemp('degenerate')
    base = SMALL_RESIZE_CONFIG
    plain, ood = tmp / 'tiny.py', tmp / 'tiny_ood.py'
    plain.write_text(base)
    ood.write_text(base + "model = dict(_delete_=True, type='OODSegmentor',"
                   " segmentor={{_base_.model}}, scorer='energy', "
                   f'threshold={THRESHOLD})\n')
    torch.manual_seed(0)
    ckpt = tmp / 'tiny.pth'
    torch.save({'state_dict': init_model(str(plain)).state_dict()}, ckpt)
    return dict(plain=str(plain), ood=str(ood), ckpt=str(ckpt))


@pytest.fixture(scope='module')
def inferencer(model_files):
    from mmseg_ood.apis import OODInferencer
    return OODInferencer(model_files['plain'], model_files['ckpt'],
                         scorer='energy', threshold=THRESHOLD,
                         show_progress=False)


def _image(path, shape, seed=0):
    img = np.random.default_rng(seed).integers(0, 256, shape + (3, ),
                                               np.uint8)
    assert cv2.imwrite(str(path), img)
    return str(path), img


# --- images through the inferencer and the tool ---------------------------


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('with_labels', [True, False])
def test_tiny_images_are_segmented_at_their_size(inferencer, tmp_path,
                                                 shape, with_labels):
    """A 1x1 image raised IndexError in mmseg's overlay drawing; every
    output now has the image's size, and the decision is the score's."""
    path, _ = _image(tmp_path / 'img.png', shape)
    out = tmp_path / 'out'
    res = inferencer(path, out_dir=str(out), return_vis=True,
                     with_labels=with_labels)
    pred = res['predictions']
    assert pred['sem_seg'].shape == pred['ood_mask'].shape == shape
    assert pred['ood_score'].shape == shape
    assert np.isfinite(pred['ood_score']).all()
    np.testing.assert_array_equal(pred['ood_mask'],
                                  pred['ood_score'] >= THRESHOLD)
    vis = res['visualization']
    if with_labels:  # the image, and the legend to its right
        assert vis.shape[0] >= shape[0] and vis.shape[1] > shape[1]
    else:
        assert vis.shape == shape + (3, )
    mask = cv2.imread(str(out / 'mask' / 'img.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, pred['ood_mask'] * 255)
    label = cv2.imread(str(out / 'pred' / 'img.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(label, pred['sem_seg'])
    np.testing.assert_array_equal(np.load(out / 'score' / 'img.npy'),
                                  pred['ood_score'])
    vis = cv2.imread(str(out / 'vis' / 'img.png'))
    np.testing.assert_array_equal(vis[..., ::-1], res['visualization'])


@pytest.mark.parametrize('shape', [(1, 1000), (1000, 1)])
def test_a_thin_image_the_resize_empties_is_named(inferencer, model_files,
                                                  tmp_path, capsys, shape):
    """At the test resize (64 x 32, keep_ratio) a 1 x 1000 image would be
    0 x 64 pixels: refused naming the image and its size."""
    from mmseg_ood.apis import OODInputError
    from mmseg_ood.tools.ood_infer import main
    path, img = _image(tmp_path / 'thin.png', shape)
    size = f'{shape[0]} x {shape[1]} pixels'
    with pytest.raises(OODInputError, match=f'{path} of {size}'):
        inferencer(path)
    with pytest.raises(OODInputError, match=f'array input of {size}'):
        inferencer(img)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([model_files['ood'], model_files['ckpt'], path, '--out-dir',
              str(tmp_path / 'out')])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'shrink to 0 pixels' in err


@pytest.mark.parametrize('shape', [(1, 1), (1, 7), (7, 1)])
def test_tiny_arrays_match_their_files(inferencer, tmp_path, shape):
    path, img = _image(tmp_path / 'img.png', shape, seed=4)
    from_file = inferencer(path)['predictions']
    from_array = inferencer(img)['predictions']
    np.testing.assert_array_equal(from_file['sem_seg'],
                                  from_array['sem_seg'])
    np.testing.assert_allclose(from_file['ood_score'],
                               from_array['ood_score'], rtol=0, atol=1e-5)


def test_the_tool_on_tiny_images_and_a_one_pixel_video(model_files,
                                                       tmp_path):
    from mmseg_ood.tools.ood_infer import main
    images = [_image(tmp_path / f'i{h}x{w}.png', (h, w))[0]
              for h, w in [(1, 1), (1, 9), (9, 1)]]
    video = str(tmp_path / 'dot.avi')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'MJPG'), 5,
                             (8, 8))
    for i in range(2):
        writer.write(np.full((8, 8, 3), 60 * i, np.uint8))
    writer.release()
    out = tmp_path / 'out'
    res = main([model_files['ood'], model_files['ckpt'], *images, video,
                '--out-dir', str(out)])
    assert res['images'] == 3 and res['frames'] == 2
    for path, shape in zip(images, [(1, 1), (1, 9), (9, 1)]):
        name = osp.splitext(osp.basename(path))[0]
        assert cv2.imread(str(out / 'mask' / f'{name}.png'),
                          cv2.IMREAD_UNCHANGED).shape == shape
        assert np.load(out / 'score' / f'{name}.npy').shape == shape
    cap = cv2.VideoCapture(str(out / 'vis' / 'dot.mp4'))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    cap.release()


# --- label maps through LoadOODAnnotations --------------------------------


@pytest.mark.parametrize('shape', [(1, 1), (1, 6), (6, 1)])
def test_label_maps_of_one_row_or_column_load(tmp_path, shape):
    """``squeeze()`` turned a 1xW map into (W,) and refused it; only the
    channel axis is dropped now."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    os.makedirs(tmp_path / 'img')
    os.makedirs(tmp_path / 'mask')
    _image(tmp_path / 'img' / 'a.png', shape)
    raw = np.zeros(shape, np.uint8)
    raw.flat[0] = 1
    raw.flat[-1] = 255 if raw.size > 1 else 1
    assert cv2.imwrite(str(tmp_path / 'mask' / 'a.png'), raw)
    init_default_scope('mmseg')
    ds = DATASETS.build(dict(
        type='OODFolderDataset', data_root=str(tmp_path),
        data_prefix=dict(img_path='img', seg_map_path='mask'),
        img_suffix='.png', seg_map_suffix='.png',
        value_map={0: 0, 1: 1, 255: 255},
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadOODAnnotations'),
                  dict(type='PackSegInputs')]))
    sample = ds[0]['data_samples']
    gt = sample.gt_sem_seg.data
    assert tuple(gt.shape) == (1, ) + shape
    np.testing.assert_array_equal(gt[0].numpy(), raw)


def test_a_colour_label_map_is_still_refused_by_name(tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    os.makedirs(tmp_path / 'img')
    os.makedirs(tmp_path / 'mask')
    _image(tmp_path / 'img' / 'a.png', (1, 6))
    _image(tmp_path / 'mask' / 'a.png', (1, 6))   # 3 channels
    init_default_scope('mmseg')
    ds = DATASETS.build(dict(
        type='OODFolderDataset', data_root=str(tmp_path),
        data_prefix=dict(img_path='img', seg_map_path='mask'),
        img_suffix='.png', seg_map_suffix='.png', value_map={0: 0},
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadOODAnnotations')]))
    with pytest.raises(InvalidValueError, match=r'has shape \(1, 6, 3\)'):
        ds[0]


# --- metrics on hand-made arrays ------------------------------------------


def _sample(labels, seed, name):
    rng = np.random.default_rng(seed)
    scores = rng.random(labels.shape).astype(np.float32) + 0.5 * (labels
                                                                  == 1)
    return dict(ood_scores=dict(msp=torch.from_numpy(scores)),
                gt_sem_seg=dict(data=torch.from_numpy(labels)[None]),
                img_path=name)


def _evaluate(labels_list, **kwargs):
    """OODMetric over ``(labels, seed)`` pairs (the seed draws the
    scores, so that one image scores the same wherever it comes)."""
    metric = OODMetric(**kwargs)
    samples = [_sample(y, seed, f'{seed}.png') for y, seed in labels_list]
    for s in samples:
        metric.process({}, [s])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = metric.evaluate(len(samples))
    return out, samples, [w for w in caught
                          if issubclass(w.category, OODNotice)]


def _labels(shape, seed):
    y = np.random.default_rng(100 + seed).integers(0, 2, shape).astype(
        np.uint8)
    y.flat[0], y.flat[-1] = 0, 1   # both classes where there are two pixels
    return y


def test_ood_metric_on_one_row_and_one_column_maps():
    labels = [(_labels(s, i), i) for i, s in enumerate([(1, 9), (9, 1),
                                                        (1, 300), (2, 2)])]
    labels.append((np.ones((1, 1), np.uint8), 9))
    out, samples, _ = _evaluate(labels, per_image=True)
    y = np.concatenate([s['gt_sem_seg']['data'].numpy().ravel()
                        for s in samples])
    s = np.concatenate([s['ood_scores']['msp'].numpy().ravel()
                        for s in samples])
    assert out['ood/msp/num_ood'] == int((y == 1).sum())
    assert out['ood/msp/num_id'] == int((y == 0).sum())
    # the accumulator bins float scores (16-bit keys): close, not exact
    assert out['ood/msp/auroc'] == pytest.approx(roc_auc_score(y, s),
                                                 abs=1e-3)
    assert np.isfinite(out['ood/msp/per_image_auroc'])


def test_an_image_without_valid_pixels_changes_nothing():
    normal = [(_labels((6, 7), i), i) for i in range(3)]
    void = (np.full((5, 4), 255, np.uint8), 7)
    ref, _, _ = _evaluate(normal, per_image=True)
    got, _, _ = _evaluate(normal[:1] + [void] + normal[1:], per_image=True)
    for key in ('auroc', 'ap', 'fpr95', 'num_ood', 'num_id',
                'per_image_auroc'):
        assert got[f'ood/msp/{key}'] == pytest.approx(ref[f'ood/msp/{key}'])
    # a 1x1 void image too
    got, _, _ = _evaluate([(np.full((1, 1), 255, np.uint8), 8)] + normal)
    assert got['ood/msp/auroc'] == pytest.approx(ref['ood/msp/auroc'])


def test_only_images_without_valid_pixels_is_a_named_notice():
    out, _, notices = _evaluate([(np.full((3, 3), 255, np.uint8), 0),
                                 (np.full((1, 1), 255, np.uint8), 1)])
    assert out['ood/msp/num_ood'] == out['ood/msp/num_id'] == 0
    assert np.isnan(out['ood/msp/auroc'])
    assert any('no OOD pixels' in str(w.message) for w in notices)


def test_pixel_accumulator_without_valid_pixels():
    acc = PixelOODAccumulator(name='msp')
    acc.update(np.zeros((1, 1), np.float32), np.full((1, 1), 255, np.uint8))
    acc.update(np.zeros((1, 5), np.float32), np.full((1, 5), 255, np.uint8))
    with pytest.warns(OODNotice, match='msp: no OOD pixels'):
        res = acc.compute()
    assert res['num_ood'] == res['num_id'] == 0
    assert np.isnan(res['auroc']) and np.isnan(res['fpr95'])
    # and with valid pixels later, exactly the valid ones count
    acc.update(np.array([[0.1, 0.9]], np.float32),
               np.array([[0, 1]], np.uint8))
    res = acc.compute()
    assert res['num_ood'] == res['num_id'] == 1 and res['auroc'] == 1.0


@pytest.mark.parametrize('shape', [(1, 400), (400, 1)])
def test_components_along_one_row_or_column(shape):
    lab = np.zeros(400, np.uint8)
    lab[100:250] = 1
    lab = lab.reshape(shape)
    acc = ComponentAccumulator(0.5, min_pred_size=1, min_gt_size=1)
    acc.update((lab == 1).astype(np.float32), lab)
    res = acc.compute()
    assert res['num_gt_components'] == res['num_pred_components'] == 1
    assert res['siou'] == res['ppv'] == res['mean_f1'] == 1.0


def test_a_transposed_score_map_is_refused_by_name():
    metric = OODMetric()
    s = _sample(np.zeros((1, 6), np.uint8), 0, 'row.png')
    s['ood_scores']['msp'] = s['ood_scores']['msp'].T.contiguous()
    with pytest.raises(InvalidValueError, match=r'\(6, 1\).*\(1, 6\)'):
        metric.process({}, [s])
