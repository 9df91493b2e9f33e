"""Background IoU on whole-image OOD sets (IBE Table 2): the metric, the
dataset and presets over the generator's images, and ood_test's pass."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

from conftest import REPO, STREET_CONFIG
from mmseg_ood.errors import OODNotice
from mmseg_ood.evaluation import BackgroundIoUMetric

OBJECTS_CONFIG = osp.join(
    REPO, 'configs', 'synthetic',
    'deeplabv3plus_r18-d8_1xb8-300it_synthetic-objects-128x128.py')
PRESETS = ('synthetic_objects_image_ood_gwn',
           'synthetic_objects_image_ood_textures')
NUM_IMAGE_OOD = 2


def _sample(pred, gt=None, name='x.png'):
    s = dict(img_path=name,
             pred_sem_seg=dict(data=torch.as_tensor(pred)[None]))
    if gt is not None:
        s['gt_sem_seg'] = dict(data=torch.as_tensor(gt)[None])
    return s


# image A: no labels, 10 of 16 pixels predicted background (class 0)
PRED_A = np.array([0] * 10 + [3] * 6).reshape(4, 4)
# image B: 4 void pixels (0, 1, 14, 15); of the 12 valid ones, 7 (2..8)
# predicted background
PRED_B = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 1, 1, 2, 2]
                  ).reshape(4, 4)
GT_B = np.array([255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255]
                ).reshape(4, 4)


def test_metric_by_hand():
    m = BackgroundIoUMetric(background_index=0)
    m.process({}, [_sample(PRED_A), _sample(PRED_B, GT_B)])
    out = m.evaluate(2)
    assert out['background_iou/pooled'] == pytest.approx(
        100 * (10 + 7) / (16 + 12))
    assert out['background_iou/image_mean'] == pytest.approx(
        100 * (10 / 16 + 7 / 12) / 2)
    assert (out['background_iou/images'], out['background_iou/pixels']) == \
        (2, 28)
    # another background index: class 2 is background in B
    m2 = BackgroundIoUMetric(background_index=2, prefix='b2')
    m2.process({}, [_sample(PRED_B, np.where(GT_B == 0, 2, 255))])
    assert m2.evaluate(1)['b2/pooled'] == pytest.approx(100 * 3 / 12)


def test_metric_leaves_out_the_sampler_padding(monkeypatch):
    """Rank 1 of 2 on a 3-image set gets positions 1 and 3; 3 is the
    repeat of image 0 that DefaultSampler pads with."""
    import mmseg_ood.evaluation.metrics.sampler_padding as sp
    monkeypatch.setattr(sp, 'get_dist_info', lambda: (1, 2))
    m = BackgroundIoUMetric(background_index=0)
    m.process({}, [_sample(PRED_B, GT_B)])
    m.process({}, [_sample(PRED_A)])        # the repeat
    out = m.evaluate(3)
    assert out['background_iou/pooled'] == pytest.approx(100 * 7 / 12)
    assert out['background_iou/images'] == 1


def test_metric_errors():
    with pytest.raises(ValueError, match='background_index'):
        BackgroundIoUMetric(background_index=-1)
    with pytest.raises(TypeError, match='background_index'):
        BackgroundIoUMetric()
    m = BackgroundIoUMetric(background_index=0)
    gt = np.zeros((4, 4), int)
    gt[0, 0] = 3
    with pytest.raises(ValueError, match=r'img7\.png.*not the background'):
        m.process({}, [_sample(PRED_A, gt, name='img7.png')])
    m = BackgroundIoUMetric(background_index=6)
    s = _sample(PRED_A)
    s['seg_logits'] = dict(data=torch.zeros(6, 4, 4))
    with pytest.raises(ValueError, match='predicts 6 classes'):
        m.process({}, [s])


@pytest.fixture(scope='module')
def objects_root(tmp_path_factory):
    from mmseg_ood.synthetic import make_synthetic_benchmark
    out = str(tmp_path_factory.mktemp('objects'))
    make_synthetic_benchmark(out, seed=1, variants=('objects', ),
                             num_train=1, num_val=1, num_ood=1,
                             num_image_ood=NUM_IMAGE_OOD, num_proxy=1)
    return out


def test_presets_find_the_generator_images(objects_root, monkeypatch):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    from mmseg_ood.datasets import load_dataset_preset
    from mmseg_ood.datasets import check_dataset_files
    init_default_scope('mmseg')
    monkeypatch.setenv('MMSEG_OOD_DATA', objects_root)
    pipeline = Config.fromfile(OBJECTS_CONFIG).test_pipeline
    for name, kind in zip(PRESETS, ('gwn', 'textures')):
        p = load_dataset_preset(name)
        assert p.whole_image
        assert check_dataset_files(p.dataset, name) == NUM_IMAGE_OOD
        ds = DATASETS.build(dict(p.dataset, pipeline=pipeline))
        assert [osp.relpath(ds.get_data_info(i)['img_path'], objects_root)
                for i in range(len(ds))] == [
            f'objects/image_ood/{kind}/{i:04d}.png'
            for i in range(NUM_IMAGE_OOD)]
        item = ds[0]   # the config's LoadAnnotations is left out
        assert 'gt_sem_seg' not in item['data_samples']
        assert item['inputs'].shape == (3, 128, 128)
    assert not load_dataset_preset('synthetic_objects_ood').whole_image


def test_dataset_and_preset_errors(tmp_path):
    from mmseg.registry import DATASETS
    from mmseg_ood.datasets import load_dataset_preset
    with pytest.raises(ValueError, match='seg_map_path'):
        DATASETS.build(dict(type='WholeImageOODDataset', data_root='x',
                            data_prefix=dict(img_path='a',
                                             seg_map_path='b')))
    with pytest.raises(FileNotFoundError, match='img_path'):
        DATASETS.build(dict(type='WholeImageOODDataset',
                            data_root=str(tmp_path),
                            data_prefix=dict(img_path='none')))
    bad = tmp_path / 'bad.py'
    bad.write_text("ood_dataset = dict(type='WholeImageOODDataset', "
                   "data_root='x')\nwhole_image = 'yes'\n")
    with pytest.raises(ValueError, match='whole_image'):
        load_dataset_preset(str(bad))


def _checkpoint(config, path, classes, image=None):
    """A random model; with ``image``, its background bias is raised so
    that about half of that image is predicted background (class 0)."""
    from mmseg.apis import inference_model
    from mmseg_ood.apis import init_model
    torch.manual_seed(0)
    model = init_model(config)
    if image is not None:
        v = inference_model(model, image).seg_logits.data
        gap = v[1:].max(0).values - v[0]
        with torch.no_grad():
            model.decode_head.conv_seg.bias[0] += gap.median()
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=list(classes)))),
               path)
    return str(path)


def test_ood_test_reports_background_iou(objects_root, tmp_path,
                                         monkeypatch):
    """The pooled value equals mmseg's own inference counted by hand; a
    model without a background class gets "not applicable"."""
    from mmseg.apis import inference_model
    from mmseg_ood.apis import init_model, ood_test
    from mmseg_ood.synthetic import OBJECTS_CLASSES, STREET_CLASSES
    monkeypatch.setenv('MMSEG_OOD_DATA', objects_root)
    options = {'test_dataloader.num_workers': 0,
               'test_dataloader.persistent_workers': False}
    ckpt = _checkpoint(OBJECTS_CONFIG, tmp_path / 'objects.pth',
                       OBJECTS_CLASSES, osp.join(objects_root, 'objects',
                                                 'image_ood', 'gwn',
                                                 '0000.png'))
    work = str(tmp_path / 'work')
    payload = ood_test(OBJECTS_CONFIG, ckpt, work_dir=work,
                       datasets=PRESETS, id_eval=False, cfg_options=options)
    model = init_model(OBJECTS_CONFIG, ckpt)
    for name, kind in zip(PRESETS, ('gwn', 'textures')):
        r = payload['background_iou'][name]
        bg = n = 0
        for i in range(NUM_IMAGE_OOD):
            pred = inference_model(model, osp.join(
                objects_root, 'objects', 'image_ood', kind,
                f'{i:04d}.png')).pred_sem_seg.data
            bg += int((pred == 0).sum())
            n += pred.numel()
        assert r['applicable'] and r['background_index'] == 0
        assert (r['images'], r['pixels']) == (NUM_IMAGE_OOD, n)
        assert r['pooled'] == pytest.approx(100 * bg / n, abs=1e-9)
        if kind == 'gwn':
            assert 0 < bg < n
    assert payload['results'] == {}
    saved = json.load(open(osp.join(work, 'results.json')))
    assert saved['background_iou'] == json.loads(json.dumps(
        payload['background_iou']))
    md = open(osp.join(work, 'results.md')).read()
    assert 'Background IoU on whole-image OOD sets' in md and PRESETS[0] in md

    street = _checkpoint(STREET_CONFIG, tmp_path / 'street.pth',
                         STREET_CLASSES)
    with pytest.warns(OODNotice, match='not applicable'):
        payload = ood_test(STREET_CONFIG, street,
                           work_dir=str(tmp_path / 'street'),
                           datasets=PRESETS[:1], id_eval=False,
                           cfg_options=options)
    r = payload['background_iou'][PRESETS[0]]
    assert r['applicable'] is False and 'no background class' in r['reason']
    assert 'pooled' not in r


def test_whole_image_set_cannot_be_tuned_on():
    from mmseg_ood.apis import ood_test
    with pytest.raises(ValueError, match='whole-image'):
        ood_test(STREET_CONFIG, 'no.pth', tune=['eta'], tune_on=PRESETS[0],
                 datasets=['synthetic_ood'])
