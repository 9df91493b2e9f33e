"""ONNX export of a checkpoint + calibrated scorer + threshold
(:mod:`mmseg_ood.deploy.onnx_export`, ``tools/export_onnx.py``): onnxruntime
against PyTorch on the trained synthetic model, at the traced size and at
others, and the errors for what cannot be exported."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from conftest import STREET_CONFIG, ood_segmentor_config, run_tool

pytest.importorskip('onnxruntime')

from mmseg_ood.apis import init_model, score_image  # noqa: E402
from mmseg_ood.deploy.onnx_export import (OODExportError, check_onnx,
                                          compare_outputs, dynamic_input_axes,
                                          export_onnx, reference_outputs)
from mmseg_ood.formats.threshold_file import (CalibrationMismatchError,
                                              OODCalibration)
from mmseg_ood.scorers import BaseScorer  # noqa: E402
from mmseg_ood.utils import file_sha256, state_dict_sha256  # noqa: E402

SHAPE = (64, 128)


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def _images(shape, seed):
    """Street-like BGR images: smooth random colour fields plus noise, so
    that the trained model's prediction is not constant."""
    rng = np.random.default_rng(seed)
    n, h, w = shape
    coarse = rng.integers(0, 256, (n, 4, 8, 3)).astype(np.float32)
    out = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR)
                    for c in coarse])
    out += rng.normal(0, 20, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _calibration(path, ckpt, threshold, scorer=None, sha=None,
                 num_classes=6):
    scorer = scorer or {'type': 'energy'}
    return OODCalibration(
        scorer_name=scorer['type'], scorer_config=scorer,
        threshold=threshold, rule='id_fpr', target=0.01, dataset='val',
        state_dict_sha256=sha or state_dict_sha256(
            torch.load(ckpt, weights_only=False)),
        model=dict(checkpoint=ckpt, num_classes=num_classes)).save(
            str(path))


def _gap_threshold(score):
    """A threshold in the widest gap between two scores from the 2% to
    the 98% quantile: both decisions occur, and no pixel lies within float
    rounding (ONNX vs PyTorch differ by up to 4e-7 here) of the threshold,
    so the two masks must be identical. (The briefly trained model's
    energies span only about 1e-4, in steps of a few float32 ulps; a
    random binary head's are as dense: its widest gap was 2.0e-6.)"""
    values = np.unique(score).astype(np.float64)
    lo, hi = np.searchsorted(values, np.quantile(score, [0.02, 0.98]))
    i = lo + 1 + int(np.argmax(np.diff(values[lo:hi + 1])))
    gap = values[i] - values[i - 1]
    assert gap > 1e-6, f'no gap to put a threshold in (widest {gap:.2g})'
    return float((values[i - 1] + values[i]) / 2)


@pytest.fixture(scope='module')
def setup(tmp_path_factory, trained_work_dir):
    """The trained checkpoint, a calibration whose threshold lies between
    the energies of the check image (so both decisions occur), and its
    dynamic export."""
    tmp = tmp_path_factory.mktemp('onnx')
    ckpt = _ckpt(trained_work_dir)
    model = init_model(STREET_CONFIG, ckpt)
    _, score, _ = reference_outputs(model, 'energy', 0.0,
                                    _images((1, *SHAPE), 0))
    threshold = _gap_threshold(score)
    calib = _calibration(tmp / 'calibration.json', ckpt, threshold)
    out = str(tmp / 'model.onnx')
    result = export_onnx(STREET_CONFIG, ckpt, calib, out, shape=SHAPE,
                         dynamic=True, check=False)
    return dict(tmp=tmp, ckpt=ckpt, model=model, calib=calib, out=out,
                threshold=threshold, result=result)


def test_round_trip_matches_pytorch(setup):
    images = _images((1, *SHAPE), 0)
    check = check_onnx(setup['out'], setup['model'], 'energy',
                       setup['threshold'], images)
    assert check.max_score_diff <= 1e-4
    assert check.mask_mismatch == 0 and check.pred_mismatch == 0
    assert check.nonfinite_mismatch == 0
    # the threshold is inside the scores: the mask is not trivial
    assert 0.05 <= check.ood_fraction <= 0.95
    # on the synthetic model the mask is identical, near the threshold too
    assert check.near_threshold_flips == 0
    assert check.passed and 'PASSED' in check.summary()
    assert setup['result']['ood_label'] == 6  # null -> num_classes


def test_outputs_are_what_the_docs_say(setup):
    import onnxruntime as ort
    sess = ort.InferenceSession(setup['out'],
                                providers=['CPUExecutionProvider'])
    assert [i.name for i in sess.get_inputs()] == ['img']
    assert [o.name for o in sess.get_outputs()] == ['pred', 'score',
                                                    'ood_mask']
    img = _images((1, *SHAPE), 0).transpose(0, 3, 1, 2).astype(np.float32)
    pred, score, mask = sess.run(None, {'img': img})
    assert pred.dtype == np.int64 and score.dtype == np.float32
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert pred.shape == score.shape == mask.shape == (1, *SHAPE)
    # OOD pixels carry ood_label, the others an ID class
    np.testing.assert_array_equal(mask == 1, score >= setup['threshold'])
    assert (pred[mask == 1] == 6).all() and (pred[mask == 0] < 6).all()


@pytest.mark.parametrize('shape', [(2, 48, 96), (1, 96, 160)])
def test_dynamic_export_runs_at_other_sizes(setup, shape):
    check = check_onnx(setup['out'], setup['model'], 'energy',
                       setup['threshold'], _images(shape, 1))
    assert check.shape == shape
    assert check.max_score_diff <= 1e-4
    assert check.mask_mismatch == 0 and check.pred_mismatch == 0


def test_score_equals_score_image(setup, tmp_path):
    """At the test pipeline's own size (its Resize is the identity) the
    ONNX score is score_image's."""
    import onnxruntime as ort
    img = _images((1, 128, 256), 2)[0]
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, img)
    expected = score_image(setup['model'], path, ['energy'])['energy']
    sess = ort.InferenceSession(setup['out'],
                                providers=['CPUExecutionProvider'])
    _, score, _ = sess.run(None, {
        'img': img.transpose(2, 0, 1)[None].astype(np.float32)})
    assert np.abs(score[0] - expected).max() <= 1e-4


def test_fixed_shape_export_refuses_other_sizes(setup):
    import onnxruntime as ort
    out = str(setup['tmp'] / 'fixed.onnx')
    result = export_onnx(STREET_CONFIG, setup['ckpt'], setup['calib'], out,
                         shape=SHAPE)
    assert result['check'].passed and not result['dynamic']
    sess = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    assert sess.get_inputs()[0].shape == [1, 3, *SHAPE]
    with pytest.raises(Exception, match='(?i)dimension'):
        sess.run(None, {'img': np.zeros((1, 3, 32, 64), np.float32)})


def test_calibration_for_another_checkpoint_is_refused(setup, tmp_path):
    other = _calibration(tmp_path / 'other.json', setup['ckpt'], 0.0,
                         sha='0' * 64)
    with pytest.raises(CalibrationMismatchError, match='made for'):
        export_onnx(STREET_CONFIG, setup['ckpt'], other,
                    str(tmp_path / 'm.onnx'), shape=SHAPE)
    assert not osp.exists(tmp_path / 'm.onnx')


SLIDE = {'model.test_cfg': dict(mode='slide', crop_size=(64, 64),
                                stride=(48, 48))}


def test_slide_inference_needs_a_fixed_shape(setup, tmp_path):
    with pytest.raises(OODExportError, match="slide.*--shape H W"):
        export_onnx(STREET_CONFIG, setup['ckpt'], setup['calib'],
                    str(tmp_path / 'm.onnx'), shape=SHAPE, dynamic=True,
                    cfg_options=dict(SLIDE))
    # unrolled for one size, the windows are exported and match mmseg's
    # slide inference
    result = export_onnx(STREET_CONFIG, setup['ckpt'], setup['calib'],
                         str(tmp_path / 'm.onnx'), shape=SHAPE,
                         cfg_options=dict(SLIDE))
    assert result['check'].passed, result['check'].summary()


def test_scorer_the_head_cannot_support_is_refused(setup, tmp_path):
    calib = _calibration(tmp_path / 'bg.json', setup['ckpt'], 0.5,
                         scorer={'type': 'background'})
    with pytest.raises(OODExportError,
                       match="(?s)deeplabv3plus.*'background'.*IBE"):
        export_onnx(STREET_CONFIG, setup['ckpt'], calib,
                    str(tmp_path / 'm.onnx'), shape=SHAPE)


class _SingularValues(BaseScorer):
    """A score with an operator ONNX lacks (``linalg_svdvals``)."""
    name = 'singular_values'

    def score(self, inputs):
        s = inputs.logits.permute(0, 2, 3, 1)[..., None]
        return -torch.linalg.svdvals(s)[..., 0]


def test_torch_onnx_failure_names_config_head_and_scorer(setup, tmp_path):
    calib = OODCalibration(
        scorer_name='singular_values',
        scorer_config={'type': _SingularValues}, threshold=0.0,
        rule='id_fpr', target=0.01, dataset='val',
        checkpoint_sha256=file_sha256(setup['ckpt']))
    with pytest.raises(OODExportError) as info:
        export_onnx(STREET_CONFIG, setup['ckpt'], calib,
                    str(tmp_path / 'm.onnx'), shape=SHAPE, check=False)
    msg = str(info.value)
    for part in ('deeplabv3plus_r18', 'singular_values',
                 'DepthwiseSeparableASPPHead', 'linalg_svdvals'):
        assert part in msg, msg
    assert isinstance(info.value.__cause__, Exception)


def test_cli_end_to_end(setup, tmp_path):
    out = str(tmp_path / 'cli.onnx')
    img = str(tmp_path / 'img.png')
    cv2.imwrite(img, _images((1, 80, 160), 3)[0])
    proc = run_tool('export_onnx.py', STREET_CONFIG, setup['ckpt'],
                    '--calibration', setup['calib'], '--out', out,
                    '--shape', *map(str, SHAPE), '--check-image', img)
    assert osp.isfile(out)
    assert 'PASSED' in proc.stdout
    assert f'fixed 1x3x{SHAPE[0]}x{SHAPE[1]}' in proc.stdout
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record['check']['passed'] and record['shape'] == list(SHAPE)
    assert record['dynamic_axes'] == []
    assert record['check']['max_score_diff'] <= 1e-4
    # a refused export: exit status 1 and the reason, no traceback
    other = _calibration(tmp_path / 'other.json', setup['ckpt'], 0.0,
                         sha='f' * 64)
    before = open(out, 'rb').read()
    proc = run_tool('export_onnx.py', STREET_CONFIG, setup['ckpt'],
                    '--calibration', other, '--out', out, check=False)
    assert proc.returncode == 2
    assert 'made for' in proc.stderr and 'Traceback' not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert open(out, 'rb').read() == before  # the good file is kept


def test_dynamic_axes_are_the_exporters():
    # the tool prints these: dynamo specializes the batch
    assert dynamic_input_axes('torchscript', True) == ('N', 'H', 'W')
    assert dynamic_input_axes('dynamo', True) == ('H', 'W')
    assert dynamic_input_axes('dynamo', False) == ()


def test_compare_outputs_fails_on_nan_mismatch():
    rng = np.random.default_rng(0)
    score = rng.normal(size=(1, 4, 5)).astype(np.float32)
    mask = (score >= 0).astype(np.uint8)
    pred = np.where(mask == 1, 6, 1)
    ref = (pred, score, mask)
    same = compare_outputs(ref, ref, 0.0)
    assert same['max_score_diff'] == 0 and same['nonfinite_mismatch'] == 0
    # a NaN where PyTorch is finite (nanmax would skip it)
    bad = score.copy()
    bad[0, 1, 2] = np.nan
    out = compare_outputs((pred, bad, mask), ref, 0.0)
    assert out['nonfinite_mismatch'] == 1
    assert out['max_score_diff'] == float('inf')
    check = check_onnx_result(out)
    assert not check.passed and 'NaN/Inf mismatches 1' in check.summary()
    # ... and the other way round, and an Inf
    assert compare_outputs(ref, (pred, bad, mask), 0.0)[
        'nonfinite_mismatch'] == 1
    inf = score.copy()
    inf[0, 0, 0] = np.inf
    assert compare_outputs((pred, inf, mask), ref, 0.0)[
        'nonfinite_mismatch'] == 1
    # NaN on both sides agrees
    both = compare_outputs((pred, bad, mask), (pred, bad, mask), 0.0)
    assert both['nonfinite_mismatch'] == 0 and both['max_score_diff'] == 0
    assert check_onnx_result(both).passed


def check_onnx_result(fields):
    from mmseg_ood.deploy.onnx_export import OnnxCheck
    return OnnxCheck(**fields)


class _NaNAtMax(BaseScorer):
    """Energy, NaN where the first logit is at its maximum."""
    name = 'nan_at_max'

    def score(self, inputs):
        first = inputs.logits[:, 0]
        at_max = first >= first.amax(dim=(1, 2), keepdim=True)
        energy = -torch.logsumexp(inputs.logits, dim=1)
        return torch.where(at_max, torch.full_like(energy, float('nan')),
                           energy)


def test_nan_score_is_ood_in_the_graph(setup, tmp_path):
    calib = OODCalibration(
        scorer_name='nan_at_max', scorer_config={'type': _NaNAtMax},
        threshold=1e6, rule='id_fpr', target=0.01, dataset='val',
        checkpoint_sha256=file_sha256(setup['ckpt']),
        model=dict(num_classes=6))
    out = str(tmp_path / 'nan.onnx')
    result = export_onnx(STREET_CONFIG, setup['ckpt'], calib, out,
                         shape=SHAPE)
    check = result['check']
    assert check.passed, check.summary()
    assert check.nonfinite_mismatch == 0
    import onnxruntime as ort
    sess = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    img = _images((1, *SHAPE), 0).transpose(0, 3, 1, 2).astype(np.float32)
    pred, score, mask = sess.run(None, {'img': img})
    nan = np.isnan(score)
    assert nan.any() and not nan.all()
    # fail-safe: NaN is OOD; nothing else reaches the threshold
    np.testing.assert_array_equal(mask == 1, nan)
    assert (pred[nan] == 6).all() and (pred[~nan] < 6).all()


BINARY = {'model.decode_head.num_classes': 2,
          'model.decode_head.out_channels': 1}


def test_binary_head_default_ood_label_is_num_classes(tmp_path):
    """One output channel, two classes: OOD pixels get 2 (as OODSegmentor
    gives them), not 1 (the foreground class)."""
    torch.manual_seed(0)
    model = init_model(STREET_CONFIG, cfg_options=dict(BINARY))
    ckpt = str(tmp_path / 'binary.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    images = _images((1, *SHAPE), 0)
    _, score, _ = reference_outputs(model, 'energy', 0.0, images)
    threshold = _gap_threshold(score)
    calib = _calibration(tmp_path / 'calibration.json', ckpt, threshold,
                         num_classes=2)
    out = str(tmp_path / 'binary.onnx')
    result = export_onnx(STREET_CONFIG, ckpt, calib, out, shape=SHAPE,
                         cfg_options=dict(BINARY))
    assert result['ood_label'] == 2
    check = result['check']
    assert check.passed, check.summary()
    assert check.mask_mismatch == check.near_threshold_flips == 0
    import onnxruntime as ort
    sess = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    pred, _, mask = sess.run(None, {
        'img': images.transpose(0, 3, 1, 2).astype(np.float32)})
    model = init_model(STREET_CONFIG, ckpt, cfg_options=dict(BINARY))
    pred_t, _, mask_t = reference_outputs(model, OODCalibration.load(calib),
                                          None, images)
    np.testing.assert_array_equal(pred, pred_t)
    np.testing.assert_array_equal(mask, mask_t)
    assert set(np.unique(pred[mask == 1])) == {2}
    assert set(np.unique(pred[mask == 0])) <= {0, 1}
    assert 0 < mask.mean() < 1



def test_ood_segmentor_config(setup, tmp_path):
    """A config building an OODSegmentor exports its plain segmentor with
    the same calibration, and refuses another one."""
    cfg = ood_segmentor_config(tmp_path, setup['calib'])
    result = export_onnx(cfg, setup['ckpt'], setup['calib'],
                         str(tmp_path / 'm.onnx'), shape=SHAPE)
    assert result['check'].passed, result['check'].summary()
    other = _calibration(tmp_path / 'other.json', setup['ckpt'],
                         setup['threshold'] + 1.0)
    with pytest.raises(OODExportError) as info:
        export_onnx(cfg, setup['ckpt'], other, str(tmp_path / 'o.onnx'),
                    shape=SHAPE)
    msg = str(info.value)
    assert 'ood_config.py' in msg and 'OODSegmentor' in msg, msg
    assert 'threshold' in msg and 'other.json' in msg, msg
    assert not osp.exists(tmp_path / 'o.onnx')
