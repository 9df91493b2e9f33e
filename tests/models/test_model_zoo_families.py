"""Every family of mmseg's shipped model zoo scores with the default scorers.

The checks are those of ``benchmarks/model_zoo_scoring.py`` (loaded from
there): one config per family, random weights, BN, one random image through
``score_image(model, img, DEFAULT_SCORERS, strict=False)``. The logit scorers
must run on every family, with maps of the image's shape and finite; the
embedding scorers wherever the final head ends in a 1x1 linear classifier
(and there its logits must be ``conv_seg`` of the captured embeddings); a
skipped scorer's warning must name the final head's class.

Three cheap families run by default (a plain ``conv_seg`` head, PointRend's
cascade ending in a ``PointHead``, K-Net's ``IterativeDecodeHead``, at
60x100); the sweep over every family is ``slow`` (about 5 minutes on 2 CPU
cores, busy): ``pytest tests/models/test_model_zoo_families.py --run-slow``.
"""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'benchmarks', 'model_zoo_scoring.py')


def _load_benchmark():
    spec = importlib.util.spec_from_file_location('model_zoo_scoring',
                                                  SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


zoo = _load_benchmark()

#: The embedding scorers among the defaults.
EMBEDDING = zoo.EMBEDDING_SCORERS


def _final_head(rec):
    return rec['head'].split(' > ')[-1]


def check_record(rec, size):
    """The assertions shared by the fast and the slow tests."""
    assert rec['error'] is None, (
        f"{rec['family']} ({rec['config']}) failed: {rec['error']}\n"
        f"{rec.get('traceback', '')}")
    for name in zoo.LOGIT_SCORERS:
        assert name in rec['ran'], (rec['family'], rec['skipped'])
    assert not rec['problems'], (rec['family'], rec['problems'])
    assert rec['size'] == list(size)
    head = _final_head(rec)
    if rec['head_kind'] == 'softmax':  # ends in a 1x1 linear classifier
        for name in EMBEDDING:
            assert name in rec['ran'], (rec['family'], rec['skipped'])
        if rec['linear_gap'] is not None:
            assert rec['linear_gap'] < 1e-4, (rec['family'], head)
    if rec['head_kind'] == 'mask':  # MaskFormer / Mask2Former
        for name in ('rba', 'no_object'):
            assert name in rec['ran'], (rec['family'], rec['skipped'])
    for name, why in rec['skipped'].items():
        assert head in why, (
            f"{rec['family']}: the message for skipping {name!r} does not "
            f'name the final head {head}: {why!r}')


@pytest.mark.parametrize('family,head', [('fcn', 'FCNHead'),
                                         ('point_rend', 'PointHead'),
                                         ('knet', 'IterativeDecodeHead')])
def test_cheap_families_score(family, head):
    # not a multiple of 32: the maps lose the preprocessor's padding too
    size = (60, 100)
    rec = zoo.run_family(family, size)
    check_record(rec, size)
    assert _final_head(rec) == head
    if family == 'fcn':
        assert rec['linear_gap'] is not None and rec['linear_gap'] < 1e-4
    else:  # no per-pixel linear classifier: logit scorers only
        assert not set(EMBEDDING) & set(rec['ran'])
        assert set(EMBEDDING) <= set(rec['skipped'])


@pytest.mark.slow
@pytest.mark.parametrize('family', zoo.included_families())
def test_every_family_scores(family):
    # mmdet and mmpretrain are dependencies: a family that needs a missing
    # one fails here, it is not skipped
    size = (128, 256)
    rec = zoo.run_family(family, size)
    check_record(rec, tuple(zoo.SIZE_OVERRIDES.get(family, size)))


def test_mmpretrain_backbones_import_without_torchvision():
    # in a fresh interpreter: import order matters (mmseg_ood first, as
    # custom_imports does before any model is built)
    code = (
        'import importlib.util, mmseg_ood\n'
        'from mmseg_ood.utils import mmpretrain_without_torchvision as m\n'
        'tv = m.torchvision_boxes_import()\n'
        'assert m.INSTALLED is not tv, (m.INSTALLED, tv)\n'
        'import mmpretrain.models\n'
        'from mmpretrain.registry import MODELS\n'
        "assert MODELS.get('ConvNeXt') is not None\n"
        'if not tv:\n'
        '    from mmpretrain.models.utils.box_utils import box_iou\n'
        '    try:\n'
        '        box_iou(None, None)\n'
        '    except ModuleNotFoundError as e:\n'
        "        assert 'box_iou needs torchvision' in str(e), e\n"
        '    else:\n'
        "        raise AssertionError('the placeholder ran')\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-3000:]


def test_exclusions_are_zoo_families_and_every_family_has_a_config():
    families = zoo.zoo_families()
    assert set(zoo.EXCLUDED) <= set(families)
    assert '_base_' not in families
    for family in zoo.included_families():
        assert osp.isfile(zoo.family_config(family)), family
    # the table names no family the wheel does not ship
    assert set(zoo.FAMILY_CONFIGS) <= set(families)
