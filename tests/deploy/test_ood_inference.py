"""Deployment: OODSegmentor, OODInferencer and tools/ood_infer.py.

The decision is checked against an independent path: ``score_image`` on
the plain model gives the score map and prediction, and the OOD label must
appear exactly where ``score >= threshold``. The model is the Runner
checkpoint of ``trained_work_dir`` (so loading goes through the safe
loader), the images are the tiny synthetic street OOD images."""
import os
import os.path as osp
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import (ONE_THREAD_ENV, STREET_CONFIG, ood_segmentor_config,
                      run_tool)

NUM_CLASSES = 6


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def _images(root):
    folder = osp.join(root, 'street', 'ood', 'images')
    return [osp.join(folder, n) for n in sorted(os.listdir(folder))]


def _calibration(ckpt, threshold, **kw):
    from mmseg_ood.formats.threshold_file import OODCalibration
    from mmseg_ood.utils import file_sha256
    return OODCalibration(
        scorer_name='energy', scorer_config={'type': 'energy'},
        threshold=threshold, rule='id_fpr', target=0.01, dataset='val',
        checkpoint_sha256=kw.pop('sha', None) or file_sha256(ckpt),
        model=dict(checkpoint=ckpt, num_classes=kw.pop('num_classes',
                                                       NUM_CLASSES),
                   classes=[f'c{i}' for i in range(NUM_CLASSES)]), **kw)


@pytest.fixture(scope='module')
def setup(tmp_path_factory, synthetic_root, trained_work_dir):
    """Plain model, its energy maps on the OOD images (score_image), and a
    calibration at their median (so both decisions occur)."""
    from mmseg_ood.apis import init_model, score_image
    tmp = tmp_path_factory.mktemp('ood_infer')
    ckpt = _ckpt(trained_work_dir)
    model = init_model(STREET_CONFIG, ckpt)
    images = _images(synthetic_root)[:2]
    plain = [score_image(model, f, ['energy'], return_result=True)
             for f in images]
    scores = [s['energy'] for s, _ in plain]
    threshold = float(np.median(np.concatenate([s.ravel() for s in scores])))
    calib = _calibration(ckpt, threshold).save(str(tmp / 'calibration.json'))
    return dict(tmp=tmp, ckpt=ckpt, model=model, images=images,
                scores=scores, preds=[r.pred_sem_seg.data[0].numpy()
                                      for _, r in plain],
                threshold=threshold, calib=calib)


@pytest.fixture(scope='module')
def inferencer(setup):
    from mmseg_ood.apis import OODInferencer
    return OODInferencer(STREET_CONFIG, setup['ckpt'],
                         calibration=setup['calib'], device='cpu',
                         show_progress=False)


def test_ood_label_exactly_where_score_reaches_threshold(setup, inferencer):
    out = inferencer(setup['images'])['predictions']
    assert len(out) == 2
    for pred, score, plain in zip(out, setup['scores'], setup['preds']):
        ood = score >= setup['threshold']
        assert 0.2 < ood.mean() < 0.8   # both decisions occur
        np.testing.assert_array_equal(pred['ood_mask'], ood)
        np.testing.assert_array_equal(pred['sem_seg'] == NUM_CLASSES, ood)
        # elsewhere the plain model's prediction, untouched
        np.testing.assert_array_equal(pred['sem_seg'][~ood], plain[~ood])
        np.testing.assert_allclose(pred['ood_score'], score, rtol=0,
                                   atol=1e-5)
        assert pred['ood_score'].dtype == np.float32


def test_default_label_is_a_new_unknown_class(setup, inferencer):
    from mmseg_ood.models import OODSegmentor
    model = inferencer.ood_segmentor
    assert isinstance(model, OODSegmentor)
    assert model.ood_label == model.num_classes == NUM_CLASSES
    meta = model.dataset_meta
    assert len(meta['classes']) == NUM_CLASSES + 1
    assert meta['classes'][NUM_CLASSES] == 'unknown'
    assert meta['palette'][NUM_CLASSES] not in meta['palette'][:-1]
    # the segmentor's own meta is untouched
    assert len(model.segmentor.dataset_meta['classes']) == NUM_CLASSES
    # data samples carry the maps as PixelData, aligned with pred_sem_seg
    sample = inferencer(setup['images'][0], return_datasamples=True)
    assert sample.ood_mask.data.shape == sample.pred_sem_seg.data.shape
    assert torch.equal(sample.ood_score.data[0],
                       sample.ood_scores['energy'])


def test_ood_label_override_and_label_255(setup):
    from mmseg.apis import inference_model
    from mmseg_ood.models import OODSegmentor
    model = OODSegmentor.wrap(setup['model'], setup['calib'],
                              checkpoint=setup['ckpt'], ood_label=255)
    assert model.training is False
    res = inference_model(model, setup['images'][0])
    ood = setup['scores'][0] >= setup['threshold']
    np.testing.assert_array_equal(res.pred_sem_seg.data[0].numpy() == 255,
                                  ood)
    meta = model.dataset_meta
    assert len(meta['classes']) == 256 and meta['classes'][255] == 'unknown'
    # a label of an existing class merges OOD into it: no new class
    merged = OODSegmentor.wrap(setup['model'], setup['calib'], ood_label=0)
    assert len(merged.dataset_meta['classes']) == NUM_CLASSES


def test_visualizer_draws_unknown_in_its_colour(setup, inferencer):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.visualization import SegLocalVisualizer
    meta = inferencer.ood_segmentor.dataset_meta
    unknown = meta['palette'][NUM_CLASSES]
    labels = torch.zeros(1, 8, 12, dtype=torch.long)
    labels[0, :, 6:] = NUM_CLASSES
    labels[0, :4, :6] = 2
    sample = SegDataSample(pred_sem_seg=PixelData(data=labels))
    vis = SegLocalVisualizer(name='test_ood_unknown', alpha=1.0)
    vis.set_dataset_meta(classes=meta['classes'], palette=meta['palette'])
    vis.add_datasample('x', np.zeros((8, 12, 3), np.uint8), sample,
                       draw_gt=False, with_labels=False)
    drawn = vis.get_image()
    assert (drawn[:, 6:] == unknown).all()
    assert (drawn[:4, :6] == meta['palette'][2]).all()
    assert (drawn[4:, :6] == meta['palette'][0]).all()
    # the inferencer's overlay: "unknown" exactly on the OOD pixels
    out = inferencer(setup['images'][0], return_vis=True, opacity=1.0,
                     with_labels=False)
    overlay, mask = out['visualization'], out['predictions']['ood_mask']
    is_unknown = (overlay == unknown).all(-1)
    np.testing.assert_array_equal(is_unknown, mask)


def test_mismatched_calibration_is_refused(setup, tmp_path):
    from mmseg_ood.apis import OODInferencer, init_model
    from mmseg_ood.formats.threshold_file import CalibrationMismatchError
    from mmseg_ood.models import OODSegmentor
    other = _calibration('work_dirs/other/iter_300.pth', 0.0,
                         sha='ab' * 32).save(str(tmp_path / 'other.json'))
    both = f"other/iter_300.pth.*not for {setup['ckpt']}"
    with pytest.raises(CalibrationMismatchError, match=both):
        OODInferencer(STREET_CONFIG, setup['ckpt'], calibration=other,
                      show_progress=False)
    with pytest.raises(CalibrationMismatchError, match=both):
        OODSegmentor.wrap(setup['model'], other, checkpoint=setup['ckpt'])
    # a config-built OODSegmentor: checked by init_model
    cfg = ood_segmentor_config(tmp_path, other)
    with pytest.raises(CalibrationMismatchError, match=both):
        init_model(cfg, setup['ckpt'])
    seven = _calibration(setup['ckpt'], 0.0, num_classes=7).save(
        str(tmp_path / 'seven.json'))
    with pytest.raises(CalibrationMismatchError,
                       match='model with 7 classes.*EncoderDecoder with 6'):
        OODSegmentor.wrap(setup['model'], seven)



def test_config_built_wrapper_loads_a_plain_checkpoint(setup, tmp_path):
    from mmseg.apis import inference_model
    from mmseg_ood.apis import OODInferencer, init_model
    from mmseg_ood.models import OODSegmentor
    from mmseg_ood.utils import checkpoint_state_dict, load_checkpoint_file
    cfg = ood_segmentor_config(tmp_path, setup['calib'])
    model = init_model(cfg, setup['ckpt'])
    assert isinstance(model, OODSegmentor)
    # the weights are the checkpoint's (keys without `segmentor.`)
    plain = checkpoint_state_dict(load_checkpoint_file(setup['ckpt']))
    own = model.state_dict()
    assert set(own) == set(plain)
    for k, v in plain.items():
        assert torch.equal(own[k], v), k
    res = inference_model(model, setup['images'][0])
    ood = setup['scores'][0] >= setup['threshold']
    np.testing.assert_array_equal(
        res.pred_sem_seg.data[0].numpy() == NUM_CLASSES, ood)
    # its state dict round-trips into a plain model and back, either form
    wrapped = {f'segmentor.{k}': torch.zeros_like(v) for k, v in own.items()}
    model.load_state_dict(wrapped)
    assert all(not v.any() for v in model.state_dict().values()
               if v.is_floating_point())
    model.load_state_dict(plain)
    assert torch.equal(model.state_dict()['decode_head.conv_seg.weight'],
                       plain['decode_head.conv_seg.weight'])
    # the inferencer takes such a config as it is
    inf = OODInferencer(cfg, setup['ckpt'], show_progress=False)
    pred = inf(setup['images'][0])['predictions']
    np.testing.assert_array_equal(pred['ood_mask'], ood)
    with pytest.raises(ValueError, match='builds an OODSegmentor'):
        OODInferencer(cfg, setup['ckpt'], calibration=setup['calib'])


def test_arguments_are_validated(setup):
    from mmseg_ood.models import OODSegmentor
    seg = setup['model']
    with pytest.raises(ValueError, match='needs `calibration`'):
        OODSegmentor(segmentor=seg)
    with pytest.raises(ValueError, match='not both'):
        OODSegmentor(segmentor=seg, calibration=setup['calib'],
                     threshold=1.0)
    with pytest.raises(ValueError, match='`threshold` must be a finite'):
        OODSegmentor(segmentor=seg, scorer='energy', threshold=float('nan'))
    with pytest.raises(ValueError, match="`ood_label` must be .* got 256"):
        OODSegmentor(segmentor=seg, scorer='energy', threshold=0.0,
                     ood_label=256)
    with pytest.raises(TypeError, match="unknown argument 'treshold'"):
        OODSegmentor(segmentor=seg, scorer='energy', treshold=0.0)
    # scorer + threshold without a file: the same decision
    direct = OODSegmentor(segmentor=seg, scorer='energy',
                          threshold=setup['threshold'])
    assert direct.scorer_name == 'energy' and direct.calibration is None
    with pytest.raises(NotImplementedError, match='for inference'):
        direct.loss(None, None)


def test_cli_on_a_folder_and_a_video(setup, inferencer, tmp_path,
                                     single_thread):
    # the tool's masks against the API's: both on one thread (the forward
    # pass differs in its last bits across thread counts, and the median
    # threshold puts many pixels next to it)
    import mmcv
    folder = tmp_path / 'images'
    folder.mkdir()
    for f in setup['images']:
        shutil.copy(f, folder)
    video = str(tmp_path / 'drive.avi')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'MJPG'), 5,
                             (128, 64))
    frame0 = cv2.resize(cv2.imread(setup['images'][0]), (128, 64))
    for i in range(3):
        writer.write(np.roll(frame0, 8 * i, axis=1))
    writer.release()
    out = tmp_path / 'out'
    proc = run_tool('ood_infer.py', STREET_CONFIG, setup['ckpt'],
                    '--calibration', setup['calib'], str(folder), video,
                    '--out-dir', str(out), env=ONE_THREAD_ENV)
    assert 'energy' in proc.stdout and '5/5' in proc.stdout  # progress
    names = [osp.splitext(osp.basename(f))[0] for f in setup['images']]
    api = inferencer(setup['images'])['predictions']
    for name, pred in zip(names, api):
        mask = cv2.imread(str(out / 'mask' / f'{name}.png'),
                          cv2.IMREAD_UNCHANGED)
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask, pred['ood_mask'] * 255)
        label = cv2.imread(str(out / 'pred' / f'{name}.png'),
                           cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(label, pred['sem_seg'])
        np.testing.assert_array_equal(
            np.load(out / 'score' / f'{name}.npy'), pred['ood_score'])
        assert (out / 'vis' / f'{name}.png').stat().st_size
    # the video: an overlay video with every frame, and per-frame masks
    cap = cv2.VideoCapture(str(out / 'vis' / 'drive.mp4'))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 128
    frames = list(mmcv.VideoReader(video))
    assert len(os.listdir(out / 'mask' / 'drive')) == 3
    for i, frame in enumerate(frames):
        mask = cv2.imread(str(out / 'mask' / 'drive' / f'{i:06d}.png'),
                          cv2.IMREAD_UNCHANGED)
        expected = inferencer(frame)['predictions']['ood_mask']
        np.testing.assert_array_equal(mask, expected * 255)


def test_cli_errors_name_what_failed(setup, tmp_path, capsys):
    from mmseg_ood.tools.ood_infer import main
    base = [STREET_CONFIG, setup['ckpt'], '--calibration', setup['calib'],
            '--out-dir', str(tmp_path / 'out')]

    def fails(*inputs, calib=None):
        args = list(base)
        if calib:
            args[3] = calib
        with pytest.raises(SystemExit) as e:
            main(args[:2] + list(inputs) + args[2:])
        assert e.value.code == 2
        return capsys.readouterr().err

    missing = str(tmp_path / 'nope.png')
    assert f'input {missing} not found' in fails(missing)
    notes = tmp_path / 'notes.txt'
    notes.write_text('x')
    assert f'unknown file type of {notes}' in fails(str(notes))
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not a png')
    assert f'cannot read image {broken}' in fails(str(broken))
    other = _calibration('work_dirs/other/iter_300.pth', 0.0,
                         sha='cd' * 32).save(str(tmp_path / 'other.json'))
    err = fails(setup['images'][0], calib=other)
    assert 'other/iter_300.pth' in err and setup['ckpt'] in err
    gone = str(tmp_path / 'gone.json')
    assert f'calibration file {gone} not found' in fails(
        setup['images'][0], calib=gone)
    assert not (tmp_path / 'out').exists()


def test_cli_lets_internal_errors_through(setup, tmp_path, monkeypatch):
    """Only the user's errors become one line and exit status 2; a bug
    (here any ValueError inside the inferencer) keeps its traceback."""
    from mmseg_ood.tools.ood_infer import main
    api = sys.modules['mmseg_ood.apis.ood_infer']

    def broken(*args, **kwargs):
        raise ValueError('an internal bug')

    monkeypatch.setattr(api, 'OODInferencer', broken)
    with pytest.raises(ValueError, match='an internal bug'):
        main([STREET_CONFIG, setup['ckpt'], setup['images'][0],
              '--calibration', setup['calib'], '--out-dir',
              str(tmp_path / 'out')])


def test_only_undecodable_images_are_named_unreadable(setup, inferencer,
                                                      tmp_path, monkeypatch):
    from mmseg_ood.apis import OODInputError
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not a png')
    with pytest.raises(OODInputError, match=f'cannot read image {broken}'):
        inferencer(str(broken))

    def bad_config(item):   # e.g. a transform misconfigured
        raise KeyError('Resize needs `scale`')

    monkeypatch.setattr(inferencer, 'pipeline', bad_config)
    with pytest.raises(KeyError, match='Resize needs') as e:
        inferencer(setup['images'][0])
    assert not isinstance(e.value, ValueError)


def test_unknown_colour_is_far_from_every_class():
    from mmseg_ood.models.segmentors.ood_segmentor import (UNKNOWN_COLORS,
                                                           unknown_color)
    # sidewalk (244, 35, 232) is nearly magenta, the first preference
    palette = [[128, 64, 128], [244, 35, 232], [70, 70, 70],
               [107, 142, 35], [70, 130, 180], [0, 0, 142]]
    used = np.array(palette + [[0, 0, 0]], float)  # with padding black

    def nearest(colour):
        return np.sqrt(((used - np.array(colour, float)) ** 2).sum(1)).min()

    c = unknown_color(palette)
    for other in UNKNOWN_COLORS:   # no preferred colour is farther
        assert nearest(other) <= nearest(c)
    assert tuple(c) != (255, 0, 255)
    # a palette holding every preferred colour: still a free colour
    full = [list(x) for x in UNKNOWN_COLORS]
    assert list(unknown_color(full)) not in full + [[0, 0, 0]]


def test_nan_scores_are_ood(setup):
    """Fail-safe: a NaN score is OOD, never silently in-distribution."""
    from mmseg.apis import inference_model
    from mmseg_ood.formats.threshold_file import OODCalibration, decide_ood
    from mmseg_ood.models import OODSegmentor
    from mmseg_ood.scorers.energy import Energy

    class NaNOnTheLeft(Energy):
        def score(self, inputs):
            s = super().score(inputs).clone()
            s[..., :s.shape[-1] // 2] = float('nan')
            return s

    th = setup['threshold']
    model = OODSegmentor.wrap(setup['model'], scorer=NaNOnTheLeft(),
                              threshold=th)
    res = inference_model(model, setup['images'][0])
    score = res.ood_score.data[0]
    nan = torch.isnan(score)
    assert nan.any() and (~nan).any()
    mask = res.ood_mask.data[0]
    assert torch.equal(mask, (score >= th) | nan)
    assert (res.pred_sem_seg.data[0][nan] == model.ood_label).all()
    # the calibration's own decision follows the same rule
    calib = OODCalibration.load(setup['calib'])
    scores = np.array([np.nan, th - 1, th, th + 1], np.float32)
    expected = [True, False, True, True]
    assert calib.decide(scores).tolist() == expected
    assert calib.decide(torch.from_numpy(scores)).tolist() == expected
    assert decide_ood(scores, th).tolist() == expected


def test_calibration_with_a_scorer(setup):
    """A scorer given with a calibration must be the calibrated one; a
    different one is refused naming both."""
    from mmseg_ood.apis import OODInferencer
    from mmseg_ood.formats.threshold_file import CalibrationMismatchError
    from mmseg_ood.models import OODSegmentor
    with pytest.raises(CalibrationMismatchError,
                       match="scorer 'energy'.*not 'msp'"):
        OODInferencer(STREET_CONFIG, setup['ckpt'],
                      calibration=setup['calib'], scorer='msp',
                      show_progress=False)
    same = OODSegmentor.wrap(setup['model'], setup['calib'],
                             checkpoint=setup['ckpt'], scorer='energy')
    assert same.scorer_name == 'energy'
    assert same.threshold == setup['threshold']


def test_inferencer_checks_label_and_threshold_first(setup):
    from mmseg_ood.apis import OODInferencer
    with pytest.raises(ValueError, match='`ood_label` must be .* got 256'):
        OODInferencer(STREET_CONFIG, setup['ckpt'],
                      calibration=setup['calib'], ood_label=256)
    with pytest.raises(ValueError, match='`ood_label` must be .* got True'):
        OODInferencer(STREET_CONFIG, setup['ckpt'],
                      calibration=setup['calib'], ood_label=True)
    with pytest.raises(ValueError, match='`threshold` must be a finite'):
        OODInferencer(STREET_CONFIG, setup['ckpt'], scorer='energy',
                      threshold=float('inf'))


def test_config_built_wrapper_without_dataset_meta(setup, tmp_path):
    """mmseg's init_model reads ``model.decode_head`` for a checkpoint
    without ``dataset_meta``; OOD scoring sees through the wrapper."""
    from mmseg.apis import inference_model
    from mmseg_ood.apis import init_model, score_image
    from mmseg_ood.models import OODScoring, OODSegmentor, unwrap_segmentor
    from mmseg_ood.utils import checkpoint_state_dict, load_checkpoint_file
    plain = checkpoint_state_dict(load_checkpoint_file(setup['ckpt']))
    bare = str(tmp_path / 'no_meta.pth')
    # a meta without dataset_meta (mmseg's init_model needs `meta` itself:
    # it reads checkpoint['meta'] unconditionally)
    torch.save({'state_dict': plain, 'meta': {}}, bare)
    calib = _calibration(bare, setup['threshold']).save(
        str(tmp_path / 'calibration.json'))
    model = init_model(ood_segmentor_config(tmp_path, calib), bare)
    assert isinstance(model, OODSegmentor)
    assert unwrap_segmentor(model) is model.segmentor
    assert model.decode_head is model.segmentor.decode_head
    # the property registers nothing: the weights are in the state once
    assert 'decode_head' not in model._modules
    assert set(model.state_dict()) == set(plain)
    with pytest.raises(AttributeError):
        model.decode_head = None
    # scorers attach to the plain segmentor (as export_onnx does) ...
    scoring = OODScoring(model, ['msp'])
    assert scoring.segmentor is model.segmentor
    # ... and not on top of the wrapper's own scorer: a clear error
    with pytest.raises(RuntimeError, match='another OODScoring'):
        score_image(model, setup['images'][0], ['msp'])
    # detached again: the wrapper works as before
    res = inference_model(model, setup['images'][0])
    np.testing.assert_array_equal(
        res.ood_mask.data[0].numpy(),
        setup['scores'][0] >= setup['threshold'])
