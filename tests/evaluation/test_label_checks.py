"""Raw label values a value_map does not list are reported, not silently
voided; undecodable images and label maps are errors naming the file."""
import json
import os
import os.path as osp
import random
import sys
import warnings

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

# the dataset layouts of tests/datasets/test_ood_datasets.py, whichever
# folder pytest collects first
sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                            'datasets'))
from test_ood_datasets import CASES, build_preset, rgb, write  # noqa: E402

import mmseg_ood  # noqa: F401
from mmseg.registry import DATASETS, TRANSFORMS
from mmseg_ood.datasets import (LostAndFoundDataset, listed_values,
                                value_lut, with_ood_annotations)
from mmseg_ood.evaluation import (UnlistedLabelValues,
                                  UnlistedLabelValueWarning,
                                  unlisted_values_message,
                                  warn_unlisted_values)

PACKED = with_ood_annotations([dict(type='LoadImageFromFile'),
                               dict(type='PackSegInputs')])


def smiyc_tree(root, label, image=None):
    """One RoadAnomaly21 (SMIYC) frame; returns (image, label) paths."""
    img = osp.join(root, 'images', 'validation0000.jpg')
    lab = osp.join(root, 'labels_masks', 'validation0000_labels_semantic.png')
    if image is None:
        image = rgb() if isinstance(label, bytes) else np.full(
            label.shape[:2] + (3, ), 128, np.uint8)
    write(img, image)
    if isinstance(label, bytes):
        os.makedirs(osp.dirname(lab), exist_ok=True)
        with open(lab, 'wb') as f:
            f.write(label)
    else:
        write(lab, label)
    return img, lab


def build(root, pipeline=PACKED, **kwargs):
    init_default_scope('mmseg')
    return DATASETS.build(dict(type=kwargs.pop('type', 'RoadAnomaly21Dataset'),
                               data_root=str(root), pipeline=pipeline,
                               **kwargs))


# --- value maps --------------------------------------------------------------
def test_listed_values_name_every_key_voids_and_ranges_included():
    vm = {0: 0, (2, 4): 1, 255: 255}
    assert np.flatnonzero(listed_values(vm)).tolist() == [0, 2, 3, 4, 255]
    lut = value_lut(vm)
    assert lut[[0, 1, 2, 4, 5, 255]].tolist() == [0, 255, 1, 1, 255, 255]
    # unlisted 1 and listed 255 both map to void; only the listing differs
    assert listed_values({}).sum() == 0
    assert listed_values(LostAndFoundDataset.VALUE_MAP).all()
    assert value_lut(LostAndFoundDataset.VALUE_MAP)[[0, 1, 2, 200, 201,
                                                     255]].tolist() == [
        255, 0, 1, 1, 255, 255]
    for bad in ({300: 1}, {(5, 2): 1}, {(0, 256): 255}, {'a': 0},
                {-1: 0}, {1.5: 0}):
        with pytest.raises(ValueError, match='value_map'):
            listed_values(bad)
    with pytest.raises(ValueError, match='targets must be 0, 1 or 255'):
        listed_values({0: 7})


# --- per-sample record -------------------------------------------------------
def test_smiyc_patch_of_seven_is_recorded_and_packed(tmp_path):
    raw = np.zeros((6, 8), np.uint8)
    raw[:, 6:] = 1
    raw[0] = 255
    raw[2:4, 1:4] = 7
    smiyc_tree(str(tmp_path), raw)
    out = build(tmp_path)[0]
    sample = out['data_samples']
    assert sample.ood_unlisted == {7: 6}
    gt = sample.gt_sem_seg.data.numpy()[0]
    assert (gt[raw == 7] == 255).all() and (gt[raw == 1] == 1).all()
    # mmseg's own meta keys are still packed
    assert sample.seg_map_path.endswith('validation0000_labels_semantic.png')
    assert sample.ori_shape == (6, 8)


def test_folder_anomalies_labelled_two_are_reported(tmp_path):
    raw = np.zeros((4, 4), np.uint8)
    raw[1:3, 1:3] = 2           # the anomalies; value_map expects 255
    write(str(tmp_path / 'img' / 'a.jpg'), rgb())
    write(str(tmp_path / 'mask' / 'a.png'), raw)
    ds = build(tmp_path, type='OODFolderDataset',
               data_prefix=dict(img_path='img', seg_map_path='mask'),
               img_suffix='.jpg', seg_map_suffix='.png',
               value_map={0: 0, 255: 1})
    sample = ds[0]['data_samples']
    assert sample.ood_unlisted == {2: 4}
    assert not (sample.gt_sem_seg.data == 1).any()   # every OOD pixel lost
    acc = UnlistedLabelValues().update(sample.seg_map_path,
                                       sample.ood_unlisted)
    msg = unlisted_values_message('my_folder', acc.compute())
    assert 'my_folder' in msg and 'a.png' in msg and '(2: 4 px)' in msg


TYPICAL = {  # raw values the real label files of each preset contain
    'road_anomaly21': [0, 1, 255], 'road_obstacle21': [0, 1, 255],
    'fs_lost_and_found': [0, 1, 255], 'fs_static': [0, 1, 255],
    'lost_and_found': [0, 1, 2, 37, 255], 'road_anomaly': [0, 2],
}


@pytest.mark.parametrize('name', sorted(TYPICAL))
def test_shipped_presets_report_nothing_on_their_values(name, tmp_path,
                                                       monkeypatch):
    assert set(TYPICAL) <= set(CASES)
    _, sub, files, _ = CASES[name]
    base = tmp_path / sub if sub else tmp_path
    raw = np.resize(np.array(TYPICAL[name], np.uint8), (2, 4))
    for img, lab in files.items():
        write(str(base / img), rgb())
        if lab:
            write(str(base / lab), raw)
    out = build_preset(name, monkeypatch, tmp_path)[0]
    assert out['ood_unlisted'] == {}
    assert out['ood_listed'][raw].all()


@pytest.mark.parametrize('variant', ['street', 'objects'])
def test_shipped_synthetic_benchmark_reports_nothing(variant, tmp_path):
    from mmseg_ood.synthetic import make_synthetic_benchmark
    root = make_synthetic_benchmark(
        str(tmp_path), variants=variant, num_train=0, num_val=0, num_ood=3,
        num_image_ood=0, num_proxy=0, size=(48, 64))[variant]
    ds = build(osp.join(root, 'ood'), type='SyntheticOODDataset')
    assert len(ds) == 3
    for i in range(len(ds)):
        assert ds[i]['data_samples'].ood_unlisted == {}


# --- pipelines ---------------------------------------------------------------
def test_every_pack_carries_the_record_and_images_are_checked(tmp_path):
    from mmseg.datasets.transforms import PackSegInputs
    tta = [dict(type='LoadImageFromFile', imdecode_backend='pillow'),
           dict(type='TestTimeAug', transforms=[
               [dict(type='Resize', scale_factor=0.5, keep_ratio=True),
                dict(type='Resize', scale_factor=1.0, keep_ratio=True)],
               [dict(type='RandomFlip', prob=0.0)],
               [dict(type='PackSegInputs', meta_keys=('img_path', ))]])]
    out = with_ood_annotations(tta)
    assert out[0] == dict(type='LoadImageFromFileChecked',
                          imdecode_backend='pillow')
    assert out[1]['transforms'][-1] == [
        dict(type='PackSegInputs', meta_keys=('img_path', 'ood_unlisted'))]
    plain = with_ood_annotations([dict(type='mmcv.LoadImageFromFile'),
                                  dict(type='PackSegInputs')])
    assert plain[0]['type'] == 'LoadImageFromFileChecked'
    assert plain[-1]['meta_keys'][-1] == 'ood_unlisted'
    assert set(PackSegInputs().meta_keys) < set(plain[-1]['meta_keys'])
    assert with_ood_annotations(plain) == plain   # idempotent
    raw = np.zeros((6, 8), np.uint8)
    raw[0, 0] = 9
    smiyc_tree(str(tmp_path), raw)
    out = build(tmp_path, pipeline=out)[0]
    assert len(out['data_samples']) == 2
    for sample in out['data_samples']:
        assert sample.ood_unlisted == {9: 1}


# --- corrupt files -----------------------------------------------------------
@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_undecodable_image_names_the_file(backend, tmp_path):
    img, _ = smiyc_tree(str(tmp_path), np.zeros((2, 4), np.uint8))
    with open(img, 'wb') as f:
        f.write(b'not a jpeg')
    pipe = with_ood_annotations([
        dict(type='LoadImageFromFile', imdecode_backend=backend),
        dict(type='PackSegInputs')])
    with pytest.raises(ValueError, match='cannot decode the image') as info:
        build(tmp_path, pipeline=pipe)[0]
    assert img in str(info.value)
    os.remove(img)
    init_default_scope('mmseg')
    with pytest.raises(FileNotFoundError):   # missing stays missing
        TRANSFORMS.build(dict(type='LoadImageFromFileChecked')).transform(
            dict(img_path=img))


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_undecodable_label_map_names_the_file_and_its_image(backend,
                                                            tmp_path):
    img, lab = smiyc_tree(str(tmp_path), b'\x89PNG\r\n\x1a\n garbage')
    pipe = with_ood_annotations([
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', imdecode_backend=backend),
        dict(type='PackSegInputs')])
    with pytest.raises(ValueError, match='cannot decode the OOD label map'
                       ) as info:
        build(tmp_path, pipeline=pipe)[0]
    assert lab in str(info.value) and f'of image {img!r}' in str(info.value)


def test_label_map_that_is_not_one_channel_of_bytes(tmp_path):
    _, lab = smiyc_tree(str(tmp_path), np.zeros((2, 4, 3), np.uint8) + 1)
    with pytest.raises(ValueError, match=r'shape \(2, 4, 3\)') as info:
        build(tmp_path)[0]
    assert lab in str(info.value)
    wide = np.zeros((2, 4), np.uint16)
    wide[0, 0] = 257            # would wrap to 1 (OOD) as uint8
    assert cv2.imwrite(lab, wide)
    with pytest.raises(ValueError, match=r'\[0, 257\]'):
        build(tmp_path)[0]


# --- the accumulator ---------------------------------------------------------
UPDATES = [(f'labels/{i:02d}.png', u) for i, u in enumerate([
    {7: 5}, {}, {7: 1, 128: 30}, {3: 2}, {}, {200: 9}, {7: 4}, {128: 1},
    {}, {3: 1, 7: 1}])]


def test_merge_in_any_split_and_order_equals_one_pass():
    one = UnlistedLabelValues(max_examples=3)
    for f, u in UPDATES:
        one.update(f, u)
    expected = one.compute()
    assert expected['voided_pixels'] == 54 and expected['files'] == 7
    assert expected['values'] == {'3': 3, '7': 11, '128': 31, '200': 9}
    assert [e['file'] for e in expected['examples']] == [
        'labels/00.png', 'labels/02.png', 'labels/03.png']
    assert expected['examples'][1]['values'] == {'7': 1, '128': 30}
    json.dumps(expected)
    rng = random.Random(0)
    for _ in range(5):
        items = list(UPDATES)
        rng.shuffle(items)
        cut = sorted(rng.sample(range(1, len(items)), 2))
        parts = [items[:cut[0]], items[cut[0]:cut[1]], items[cut[1]:]]
        accs = [one.empty_like() for _ in parts]
        for acc, part in zip(accs, parts):
            for f, u in part:
                acc.update(f, u)
        merged = one.empty_like()
        for acc in accs:
            merged.merge(acc)
        assert merged.compute() == expected
    assert one.empty_like().compute() == dict(voided_pixels=0, files=0,
                                              values={}, examples=[])


def test_accumulator_checks_its_arguments():
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match='max_examples'):
            UnlistedLabelValues(max_examples=bad)
    acc = UnlistedLabelValues()
    with pytest.raises(TypeError, match='file'):
        acc.update(None, {7: 1})
    with pytest.raises(TypeError, match='unlisted'):
        acc.update('a.png', [7])
    for bad in ({256: 1}, {7: -1}, {'7': 1}):
        with pytest.raises(ValueError, match='unlisted'):
            acc.update('a.png', bad)
    acc.update('a.png', {np.int64(7): np.int64(3), 9: 0})
    assert acc.compute()['values'] == {'7': 3}


# --- the warning -------------------------------------------------------------
def test_message_names_files_values_counts_and_the_fix():
    assert unlisted_values_message('x', UnlistedLabelValues().compute()) \
        is None
    acc = UnlistedLabelValues(max_examples=2)
    for f, u in UPDATES:
        acc.update(f, u)
    msg = unlisted_values_message('road_anomaly21', acc.compute())
    assert msg.startswith('road_anomaly21: 7 label files hold raw values')
    for part in ('54 pixels', 'void (255)', '7: 11 px', '128: 31 px',
                 'labels/00.png (7: 5 px)', 'labels/02.png (7: 1 px, 128',
                 'and 5 more files', '`value_map`',
                 'value_map={..., 3: 255, 7: 255, 128: 255}'):
        assert part in msg, part
    assert 'labels/03.png' not in msg
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert warn_unlisted_values('road_anomaly21', acc.compute()) == msg
        assert warn_unlisted_values('clean', {'files': 0}) is None
    assert [w.category for w in caught] == [UnlistedLabelValueWarning]
    one = UnlistedLabelValues().update('a.png', {7: 1}).compute()
    assert unlisted_values_message('d', one).startswith(
        'd: 1 label file holds')
