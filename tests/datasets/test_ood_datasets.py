"""OOD dataset loaders on tiny trees in each dataset's real layout."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmseg_ood  # noqa: F401
from mmseg.registry import DATASETS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadOODAnnotations')]
RAW = np.array([[0, 1, 2, 3], [200, 201, 255, 1]], np.uint8)


def write(path, arr):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, arr)


def rgb():
    return np.full((2, 4, 3), 128, np.uint8)


# name -> (preset file, env var, subdir, files {img: label}, expected map)
CASES = {
    'road_anomaly21': ('SMIYC_ROOT', 'dataset_AnomalyTrack', {
        'images/validation0000.jpg': 'labels_masks/'
        'validation0000_labels_semantic.png',
        'images/test0000.jpg': None,   # unlabelled test frame: skipped
    }, {0: 0, 1: 1, 255: 255}),
    'road_obstacle21': ('SMIYC_ROOT', 'dataset_ObstacleTrack', {
        'images/validation_1.webp': 'labels_masks/'
        'validation_1_labels_semantic.png'}, {0: 0, 1: 1, 255: 255}),
    'lost_and_found': ('LAF_ROOT', '', {
        'leftImg8bit/test/02_Hanns/02_Hanns_000000_000010_leftImg8bit.png':
        'gtCoarse/test/02_Hanns/02_Hanns_000000_000010_gtCoarse_labelIds.png'
    }, {0: 255, 1: 0, 2: 1, 3: 1, 200: 1, 201: 255, 255: 255}),
    'fs_lost_and_found': ('FS_LAF_ROOT', '', {
        'images/01_a_000000_000050_leftImg8bit.png':
        'labels/01_a_000000_000050_fishy-labels.png'}, {0: 0, 1: 1,
                                                          255: 255}),
    'fs_static': ('FS_STATIC_ROOT', '', {'0007_rgb.png': '0007_labels.png'},
                  {0: 0, 1: 1, 255: 255}),
    'road_anomaly': ('ROAD_ANOMALY_ROOT', '', {
        'frames/animals01.jpg': 'frames/animals01.labels/labels_semantic.png'
    }, {0: 0, 1: 255, 2: 1, 3: 255}),
    'synthetic_ood': ('MMSEG_OOD_DATA', 'street/ood', {
        'images/0000.png': 'labels_masks/0000_labels_semantic.png'},
        {0: 0, 1: 1, 255: 255}),
}


def build_preset(name, monkeypatch, root):
    env, sub, files, _ = CASES[name]
    monkeypatch.setenv(env, str(root))
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets',
                                   'ood', f'{name}.py'))
    ds = dict(cfg.ood_dataset)
    if name == 'synthetic_ood':
        assert ds['data_root'] == f'{root}/street/ood'
    ds['pipeline'] = PIPELINE
    init_default_scope('mmseg')
    return DATASETS.build(ds)


@pytest.mark.parametrize('name', sorted(CASES))
def test_loader_maps_raw_labels(name, tmp_path, monkeypatch):
    env, sub, files, mapping = CASES[name]
    base = tmp_path / sub if sub else tmp_path
    for img, lab in files.items():
        write(str(base / img), rgb())
        if lab:
            write(str(base / lab), RAW)
    ds = build_preset(name, monkeypatch, tmp_path)
    assert len(ds) == 1   # labelled frames only
    out = ds[0]
    gt = out['gt_seg_map']
    for raw, new in mapping.items():
        assert (gt[RAW == raw] == new).all(), (name, raw)
    assert set(np.unique(gt)) <= {0, 1, 255}


@pytest.mark.parametrize('name', sorted(CASES))
def test_missing_root_names_the_layout(name, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as info:
        build_preset(name, monkeypatch, tmp_path / 'missing')
    msg = str(info.value)
    assert 'missing' in msg and 'Expected layout' in msg


def test_empty_listing_is_an_error(tmp_path, monkeypatch):
    (tmp_path / 'dataset_AnomalyTrack' / 'images').mkdir(parents=True)
    (tmp_path / 'dataset_AnomalyTrack' / 'labels_masks').mkdir()
    with pytest.raises(FileNotFoundError, match='no labelled images'):
        build_preset('road_anomaly21', monkeypatch, tmp_path)


def test_folder_dataset_value_map(tmp_path):
    write(str(tmp_path / 'img' / 'a.jpg'), rgb())
    write(str(tmp_path / 'mask' / 'a.png'), RAW)
    init_default_scope('mmseg')
    ds = DATASETS.build(dict(
        type='OODFolderDataset', data_root=str(tmp_path),
        data_prefix=dict(img_path='img', seg_map_path='mask'),
        img_suffix='.jpg', seg_map_suffix='.png',
        value_map={0: 0, (200, 255): 1}, pipeline=PIPELINE))
    gt = ds[0]['gt_seg_map']
    assert gt[0, 0] == 0 and gt[1, 0] == 1 and gt[1, 2] == 1
    assert gt[0, 1] == 255
    with pytest.raises(ValueError, match='targets must be 0, 1 or 255'):
        DATASETS.build(dict(type='OODFolderDataset', data_root=str(tmp_path),
                            value_map={0: 7}))
