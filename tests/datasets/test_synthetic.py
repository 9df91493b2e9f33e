import filecmp
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mmseg_ood.synthetic import (OBJECTS_CLASSES, STREET_CLASSES,
                                 SyntheticSpec, make_synthetic_benchmark,
                                 render_ood)

SMALL = dict(num_train=3, num_val=2, num_ood=4, num_image_ood=1,
             num_proxy=2)


def _files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root)
        for f in fs)


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = make_synthetic_benchmark(str(tmp_path / 'a'), seed=3, **SMALL)
    b = make_synthetic_benchmark(str(tmp_path / 'b'), seed=3, **SMALL)
    for variant in a:
        files = _files(a[variant])
        assert files == _files(b[variant])
        assert len(files) == 2 * 3 + 2 * 2 + 2 * 4 + 2 + 2 * 2 + 1
        _, mismatch, errors = filecmp.cmpfiles(a[variant], b[variant], files,
                                               shallow=False)
        assert mismatch == [] and errors == []


def test_other_seed_gives_other_images(tmp_path):
    a = make_synthetic_benchmark(str(tmp_path / 'a'), seed=0, **SMALL)
    b = make_synthetic_benchmark(str(tmp_path / 'b'), seed=1, **SMALL)
    img = 'images/train/0000.png'
    assert not filecmp.cmp(osp.join(a['street'], img),
                           osp.join(b['street'], img), shallow=False)


def test_split_sizes_do_not_change_other_splits(tmp_path):
    a = make_synthetic_benchmark(str(tmp_path / 'a'), variants='street',
                                 **SMALL)
    b = make_synthetic_benchmark(
        str(tmp_path / 'b'), variants='street',
        **dict(SMALL, num_train=5))
    assert filecmp.cmp(osp.join(a['street'], 'images/val/0001.png'),
                       osp.join(b['street'], 'images/val/0001.png'),
                       shallow=False)


def test_labels_use_only_documented_values(tmp_path):
    roots = make_synthetic_benchmark(str(tmp_path), seed=0, num_train=12,
                                     num_val=2, num_ood=6, num_image_ood=1)
    for variant, classes in (('street', STREET_CLASSES),
                             ('objects', OBJECTS_CLASSES)):
        root = roots[variant]
        seen = set()
        for name in sorted(os.listdir(osp.join(root, 'annotations/train'))):
            lbl = cv2.imread(osp.join(root, 'annotations/train', name),
                             cv2.IMREAD_UNCHANGED)
            assert lbl.dtype == np.uint8 and lbl.ndim == 2
            seen |= set(np.unique(lbl).tolist())
        assert seen <= set(range(len(classes)))
        # every class shows up in a dozen training images
        assert seen == set(range(len(classes))), (variant, seen)
        ood_dir = osp.join(root, 'ood', 'labels_masks')
        names = sorted(os.listdir(ood_dir))
        assert len(names) == 6
        for name in names:
            assert name.endswith('_labels_semantic.png')
            lbl = cv2.imread(osp.join(ood_dir, name), cv2.IMREAD_UNCHANGED)
            values = set(np.unique(lbl).tolist())
            assert values <= {0, 1, 255}
            assert 1 in values and 0 in values, name  # OOD in every image
        meta = json.load(open(osp.join(root, 'meta.json')))
        assert meta['classes'] == list(classes)
        assert meta['ood_labels'] == {'id': 0, 'ood': 1, 'void': 255}


@pytest.mark.parametrize('variant', ['street', 'objects'])
def test_ood_objects_cover_a_range_of_sizes(variant):
    spec = SyntheticSpec(variant, seed=0)
    areas = []
    for i in range(20):
        _, lbl = render_ood(spec, i)
        n, comp = cv2.connectedComponents((lbl == 1).astype(np.uint8), 8)
        areas += [int((comp == k).sum()) for k in range(1, n)]
    assert min(areas) < 60 and max(areas) > 600, areas


def test_existing_matching_copy_is_reused(tmp_path):
    root = make_synthetic_benchmark(str(tmp_path), variants='street',
                                    **SMALL)['street']
    img = osp.join(root, 'images/train/0000.png')
    os.utime(img, (0, 0))
    make_synthetic_benchmark(str(tmp_path), variants='street', **SMALL)
    assert os.stat(img).st_mtime == 0  # not rewritten
    make_synthetic_benchmark(str(tmp_path), variants='street', seed=1,
                             **SMALL)
    assert os.stat(img).st_mtime != 0  # other seed: regenerated


@pytest.mark.parametrize('kwargs, match', [
    (dict(variant='city'), 'variant'),
    (dict(variant='street', num_train=-1), 'num_train'),
    (dict(variant='street', num_ood=1.5), 'num_ood'),
    (dict(variant='street', size=(16, 16)), 'size'),
])
def test_bad_spec_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticSpec(**kwargs)


def test_unknown_variant_is_named(tmp_path):
    with pytest.raises(ValueError, match="variants.*'city'"):
        make_synthetic_benchmark(str(tmp_path), variants=['city'])
