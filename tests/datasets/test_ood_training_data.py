"""Outlier proxies: the synthetic proxy, mixing into an ID dataset, the COCO
proxy builder and its tool."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmseg.registry import DATASETS
from mmseg_ood.synthetic import (PROXY_OOD_INDEX, SyntheticSpec, render_ood,
                                 render_proxy)


def test_synthetic_proxy_labels_and_determinism():
    spec = SyntheticSpec('objects')
    for i in range(5):
        img, lbl = render_proxy(spec, i)
        assert img.shape == (128, 128, 3) and lbl.shape == (128, 128)
        assert set(np.unique(lbl)) <= {PROXY_OOD_INDEX, 255}
        assert (lbl == PROXY_OOD_INDEX).any()
        img2, lbl2 = render_proxy(spec, i)
        assert np.array_equal(img, img2) and np.array_equal(lbl, lbl2)


def test_synthetic_proxy_differs_from_the_ood_test_objects():
    """Proxy objects are smooth (gradient + noise), test objects are
    checkered / striped / dotted: compare their high-frequency energy."""
    spec = SyntheticSpec('objects', size=(128, 128))

    def roughness(img, mask):
        gray = img.mean(-1)
        lap = np.abs(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F))
        inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5),
                                                         np.uint8)) > 0
        return lap[inner].mean() if inner.any() else np.nan

    proxy, test = [], []
    for i in range(12):
        img, lbl = render_proxy(spec, i)
        proxy.append(roughness(img, lbl == PROXY_OOD_INDEX))
        img, lbl = render_ood(spec, i)
        test.append(roughness(img, lbl == 1))
    assert np.nanmedian(proxy) < 0.5 * np.nanmedian(test)


def _proxy_dir(root, n=3, size=(16, 20)):
    for sub in ('images', 'annotations'):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / 'images' / f'{i}.png'),
                    np.full(size + (3, ), 10 * i, np.uint8))
        lbl = np.full(size, 255, np.uint8)
        lbl[:4, :4] = 254
        cv2.imwrite(str(root / 'annotations' / f'{i}.png'), lbl)
    return str(root)


def test_outlier_mix_dataset_mixes_at_the_ratio(synthetic_root, tmp_path):
    init_default_scope('mmseg')
    proxy = _proxy_dir(tmp_path / 'proxy')
    mixed = DATASETS.build(
        dict(type='OutlierMixDataset', ratio=0.5,
             dataset=dict(type='SyntheticObjectsDataset',
                          data_root=osp.join(synthetic_root, 'objects'),
                          data_prefix=dict(img_path='images/train',
                                           seg_map_path='annotations/train'),
                          pipeline=[dict(type='LoadImageFromFile'),
                                    dict(type='LoadAnnotations')]),
             outlier=dict(type='OutlierProxyDataset', data_root=proxy,
                          pipeline=[dict(type='LoadImageFromFile'),
                                    dict(type='LoadAnnotations')])))
    assert len(mixed.dataset) == 4
    assert len(mixed) == 4 + 2
    assert mixed.metainfo['classes'][0] == 'background'
    for i in range(4):
        assert not mixed.is_outlier_slot(i)
        assert mixed[i]['img_path'] == mixed.dataset[i]['img_path']
    np.random.seed(0)
    drawn = {osp.basename(mixed[4]['img_path']) for _ in range(30)}
    assert drawn == {'0.png', '1.png', '2.png'}  # resampled on each access
    out = mixed[5]
    assert set(np.unique(out['gt_seg_map'])) == {254, 255}
    with pytest.raises(IndexError):
        mixed[6]


def test_outlier_datasets_bad_input(tmp_path):
    init_default_scope('mmseg')
    with pytest.raises(FileNotFoundError, match='annotations/NAME.png'):
        DATASETS.build(dict(type='OutlierProxyDataset',
                            data_root=str(tmp_path / 'nowhere')))
    proxy = _proxy_dir(tmp_path / 'proxy')
    with pytest.raises(ValueError, match='ratio'):
        DATASETS.build(dict(type='OutlierMixDataset', ratio=0,
                            dataset=dict(type='OutlierProxyDataset',
                                         data_root=proxy),
                            outlier=dict(type='OutlierProxyDataset',
                                         data_root=proxy)))


def _fake_coco(root):
    """Four images: one with a person (dropped), one too small (dropped),
    two kept with a polygon, a crowd RLE and an empty instance list."""
    from pycocotools import mask as mask_utils
    (root / 'annotations').mkdir(parents=True)
    (root / 'train2017').mkdir()
    images = [dict(id=1, file_name='000001.jpg', height=500, width=520),
              dict(id=2, file_name='000002.jpg', height=480, width=640),
              dict(id=3, file_name='000003.jpg', height=300, width=640),
              dict(id=4, file_name='000004.jpg', height=490, width=490)]
    for im in images:
        cv2.imwrite(str(root / 'train2017' / im['file_name']),
                    np.zeros((im['height'], im['width'], 3), np.uint8))
    crowd = np.zeros((480, 640), np.uint8, order='F')
    crowd[100:150, 200:260] = 1
    rle = mask_utils.encode(np.asfortranarray(crowd))
    rle['counts'] = rle['counts'].decode()
    anns = [
        dict(id=1, image_id=1, category_id=1, iscrowd=0, area=100,
             bbox=[0, 0, 10, 10], segmentation=[[0, 0, 10, 0, 10, 10, 0, 10]]),
        dict(id=2, image_id=2, category_id=18, iscrowd=0, area=400,
             bbox=[10, 20, 20, 20],
             segmentation=[[10, 20, 30, 20, 30, 40, 10, 40]]),
        dict(id=3, image_id=2, category_id=62, iscrowd=1, area=3000,
             bbox=[200, 100, 60, 50], segmentation=rle),
        dict(id=4, image_id=3, category_id=18, iscrowd=0, area=100,
             bbox=[0, 0, 10, 10], segmentation=[[0, 0, 10, 0, 10, 10, 0, 10]]),
    ]
    cats = [dict(id=1, name='person'), dict(id=18, name='dog'),
            dict(id=62, name='chair'), dict(id=3, name='car')]
    with open(root / 'annotations' / 'instances_train2017.json', 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)
    return str(root)


def test_prepare_coco_ood_proxy_on_a_fake_tree(tmp_path):
    from mmseg_ood.datasets.coco_ood_proxy import prepare_coco_ood_proxy
    coco = _fake_coco(tmp_path / 'coco')
    out = tmp_path / 'proxy'
    summary = prepare_coco_ood_proxy(coco, str(out))  # Cityscapes' list
    assert summary['images'] == 2
    assert summary['dropped_for_category'] == 1
    assert summary['dropped_for_size'] == 1
    assert sorted(p.name for p in (out / 'images').iterdir()) == [
        '000002.jpg', '000004.jpg']
    mask = cv2.imread(str(out / 'annotations' / '000002.png'),
                      cv2.IMREAD_UNCHANGED)
    assert mask.shape == (480, 640)
    assert set(np.unique(mask)) == {254, 255}
    assert (mask[25:35, 15:25] == 254).all()  # the polygon
    assert (mask[100:150, 200:260] == 254).all()  # the crowd RLE
    assert (mask[300:, 400:] == 255).all()
    empty = cv2.imread(str(out / 'annotations' / '000004.png'),
                       cv2.IMREAD_UNCHANGED)
    assert (empty == 255).all()
    # the result is what OutlierProxyDataset reads
    init_default_scope('mmseg')
    ds = DATASETS.build(dict(type='OutlierProxyDataset', data_root=str(out),
                             img_suffix='.jpg'))
    assert len(ds) == 2
    # VOC's list drops the chair image too; so does an explicit name
    for kwargs in (dict(id_taxonomy='voc'), dict(exclude=['chair'])):
        summary = prepare_coco_ood_proxy(coco, str(tmp_path / 'voc'),
                                         **kwargs)
        assert summary['images'] == 1
    summary = prepare_coco_ood_proxy(coco, str(tmp_path / 'all'),
                                     id_taxonomy='none')
    assert summary['images'] == 3


def test_prepare_coco_ood_bad_input(tmp_path):
    from mmseg_ood.datasets.coco_ood_proxy import prepare_coco_ood_proxy
    with pytest.raises(FileNotFoundError, match='instances_train2017.json'):
        prepare_coco_ood_proxy(str(tmp_path / 'none'), str(tmp_path / 'o'))
    coco = _fake_coco(tmp_path / 'coco')
    with pytest.raises(ValueError, match='unicorn'):
        prepare_coco_ood_proxy(coco, str(tmp_path / 'o'),
                               exclude=['unicorn'])
    with pytest.raises(ValueError, match='id_taxonomy'):
        prepare_coco_ood_proxy(coco, str(tmp_path / 'o'), id_taxonomy='ade')
    (tmp_path / 'coco' / 'train2017' / '000002.jpg').unlink()
    with pytest.raises(FileNotFoundError, match='000002.jpg'):
        prepare_coco_ood_proxy(coco, str(tmp_path / 'o'))


def test_prepare_coco_ood_tool(tmp_path, capsys):
    """The tool's argument parsing and report, in-process."""
    from mmseg_ood.tools.dataset_converters.prepare_coco_ood import main
    coco = _fake_coco(tmp_path / 'coco')
    out = tmp_path / 'proxy'
    main([coco, str(out), '--link'])
    assert 'kept 2 images' in capsys.readouterr().out
    assert osp.islink(out / 'images' / '000002.jpg')
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['id_taxonomy'] == 'cityscapes'
    assert meta['excluded_categories'] == ['person', 'car']
