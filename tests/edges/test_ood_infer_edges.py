"""tools/ood_infer.py and the OODInferencer at their edges: failed writes,
outputs that would land on inputs, empty and unwritable videos, inputs
that are no images, checkpoints without ``meta`` or that are no
checkpoints, devices that do not exist.

A tiny model (random weights, the street config with a small test resize)
keeps every run short; what is checked is where each failure ends: one
line and exit status 2 for the tool, a named error for the API, and
nothing lost (inputs byte for byte, earlier outputs unchanged, no
temporary file left)."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from conftest import SMALL_RESIZE_CONFIG
from mmseg_ood.errors import (DamagedFileError, InvalidValueError,
                              OutputPathError)

THRESHOLD = 0.0
#: The street model's classes (``SyntheticStreetDataset.METAINFO``).
STREET_CLASSES = ('road', 'sidewalk', 'building', 'vegetation', 'sky',
                  'vehicle')


def _write_config(path, model=None):
    """The street config with a small test resize (fast on CPU); with
    ``model``, its model replaced (``{{_base_.model}}`` in it)."""
    text = SMALL_RESIZE_CONFIG
    if model:
        text += f'model = {model}\n'
    path.write_text(text)
    return str(path)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """Configs, checkpoints (with and without ``meta``) and images."""
    from mmseg_ood.apis import init_model
    tmp = tmp_path_factory.mktemp('ood_infer_edges')
    plain = _write_config(tmp / 'tiny.py')
    # an OODSegmentor with a scorer and threshold: no calibration file
    ood = _write_config(
        tmp / 'tiny_ood.py',
        "dict(_delete_=True, type='OODSegmentor', "
        "segmentor={{_base_.model}}, scorer='energy', "
        f'threshold={THRESHOLD})')
    torch.manual_seed(0)
    state = init_model(plain).state_dict()
    ckpt = str(tmp / 'tiny.pth')
    torch.save({'state_dict': state,
                'meta': {'dataset_meta': {'classes': list('abcdef')}}},
               ckpt)
    rng = np.random.default_rng(0)
    images = {}
    for name, shape in (('a', (24, 40)), ('b', (17, 9)), ('one', (1, 1))):
        images[name] = str(tmp / f'{name}.png')
        assert cv2.imwrite(images[name],
                           rng.integers(0, 256, shape + (3, ), np.uint8))
    return dict(tmp=tmp, plain=plain, ood=ood, ckpt=ckpt, state=state,
                images=images)


@pytest.fixture(scope='module')
def inferencer(tiny):
    from mmseg_ood.apis import OODInferencer
    return OODInferencer(tiny['plain'], tiny['ckpt'], scorer='energy',
                         threshold=THRESHOLD, device='cpu',
                         show_progress=False)


def _tool(tiny, *args, ckpt=None):
    """Run tools/ood_infer.py in this process; its result dict."""
    from mmseg_ood.tools.ood_infer import main
    return main([tiny['ood'], ckpt or tiny['ckpt'], *map(str, args)])


def _fails(capsys, tiny, *args, ckpt=None):
    """Run the tool expecting a user error: exit 2, one line on stderr
    (returned), no traceback."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        _tool(tiny, *args, ckpt=ckpt)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('ood_infer: error: '), err
    assert err.count('\n') == 1 and 'Traceback' not in err, err
    return err


def _files(folder):
    """Relative paths of the files under ``folder`` (sorted)."""
    out = []
    for root, _, names in os.walk(folder):
        out += [osp.relpath(osp.join(root, n), folder) for n in names]
    return sorted(out)


def _no_temporaries(folder):
    assert not [f for f in _files(folder) if '.tmp' in f], _files(folder)


def _video(path, frames, size=(32, 16)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 5,
                             size)
    assert writer.isOpened()
    rng = np.random.default_rng(1)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), np.uint8))
    writer.release()
    return str(path)


# --- writes ---------------------------------------------------------------


def test_outputs_are_the_predictions(tiny, inferencer, tmp_path):
    """The baseline the failure cases keep: every output written, equal to
    the returned arrays, mask = score >= threshold."""
    out = tmp_path / 'out'
    pred = inferencer(tiny['images']['a'], out_dir=str(out))['predictions']
    assert _files(out) == ['mask/a.png', 'pred/a.png', 'score/a.npy',
                           'vis/a.png']
    np.testing.assert_array_equal(
        cv2.imread(str(out / 'mask' / 'a.png'), cv2.IMREAD_UNCHANGED),
        pred['ood_mask'].astype(np.uint8) * 255)
    np.testing.assert_array_equal(pred['ood_mask'],
                                  pred['ood_score'] >= THRESHOLD)
    np.testing.assert_array_equal(
        cv2.imread(str(out / 'pred' / 'a.png'), cv2.IMREAD_UNCHANGED),
        pred['sem_seg'])
    np.testing.assert_array_equal(np.load(out / 'score' / 'a.npy'),
                                  pred['ood_score'])
    # the overlay, and the legend of the classes to its right
    vis = cv2.imread(str(out / 'vis' / 'a.png'))
    assert vis.shape[0] >= 24 and vis.shape[1] > 40


@pytest.mark.parametrize('failing', ['vis', 'pred', 'mask', 'score'])
def test_a_failed_write_is_an_error_and_keeps_the_old_file(
        tiny, inferencer, tmp_path, monkeypatch, failing):
    out = tmp_path / 'out'
    inferencer(tiny['images']['a'], out_dir=str(out))
    before = {f: (out / f).read_bytes() for f in _files(out)}
    real_imwrite, real_save = cv2.imwrite, np.save

    def imwrite(path, img, *args):
        if osp.basename(osp.dirname(path)) == failing:
            return False   # what cv2 returns for a full disk, a bad codec
        return real_imwrite(path, img, *args)

    def save(path, arr, *args, **kwargs):
        if failing == 'score':
            raise OSError(28, 'No space left on device', path)
        return real_save(path, arr, *args, **kwargs)

    monkeypatch.setattr(cv2, 'imwrite', imwrite)
    monkeypatch.setattr(np, 'save', save)
    with pytest.raises(OSError) as e:
        inferencer(tiny['images']['a'], out_dir=str(out))
    if failing != 'score':
        assert osp.join(str(out), failing, 'a.') in str(e.value)
    # the failed file keeps its previous contents; no temporary left
    assert {f: (out / f).read_bytes() for f in _files(out)} == before
    _no_temporaries(out)


def test_tool_failed_write_is_one_line_not_exit_0(tiny, tmp_path, capsys,
                                                  monkeypatch):
    monkeypatch.setattr(cv2, 'imwrite', lambda *a, **k: False)
    out = tmp_path / 'out'
    err = _fails(capsys, tiny, tiny['images']['a'], '--out-dir', out)
    assert 'could not write' in err and str(out) in err
    assert not [f for f in _files(out) if f.endswith('.png')]
    _no_temporaries(out)


@pytest.mark.parametrize('how', ['same path', 'symlink', 'hard link'])
def test_an_output_on_an_input_is_refused_before_any_work(
        tiny, tmp_path, capsys, how):
    """An input image sitting where its overlay or label map goes: by its
    own path, or an output name that links to it."""
    out = tmp_path / 'out'
    (out / 'vis').mkdir(parents=True)
    (out / 'pred').mkdir()
    if how == 'same path':   # out/vis/a.png is the input itself
        img = out / 'vis' / 'a.png'
        img.write_bytes(open(tiny['images']['a'], 'rb').read())
    else:
        img = tmp_path / 'a.png'
        img.write_bytes(open(tiny['images']['a'], 'rb').read())
        target = out / 'pred' / 'a.png'
        if how == 'symlink':
            target.symlink_to(img)
        else:
            os.link(img, target)
    data = img.read_bytes()
    listing = _files(out)
    err = _fails(capsys, tiny, img, '--out-dir', out)
    assert 'is the input' in err and str(img) in err
    assert img.read_bytes() == data
    assert _files(out) == listing   # nothing written


def test_the_inferencer_refuses_an_output_on_an_input(tiny, inferencer,
                                                     tmp_path):
    out = tmp_path / 'out'
    (out / 'mask').mkdir(parents=True)
    img = out / 'mask' / 'a.png'
    img.write_bytes(open(tiny['images']['a'], 'rb').read())
    data = img.read_bytes()
    with pytest.raises(OutputPathError, match='is the input'):
        inferencer(str(img), out_dir=str(out))
    assert img.read_bytes() == data
    assert _files(out) == ['mask/a.png']


def test_two_inputs_of_one_name_are_refused(tiny, inferencer, tmp_path,
                                            capsys):
    for d in ('x', 'y'):
        (tmp_path / d).mkdir()
        (tmp_path / d / 'a.png').write_bytes(
            open(tiny['images']['a'], 'rb').read())
    pair = [str(tmp_path / 'x' / 'a.png'), str(tmp_path / 'y' / 'a.png')]
    out = tmp_path / 'out'
    with pytest.raises(OutputPathError, match='would both write'):
        inferencer(pair, out_dir=str(out))
    assert not out.exists()
    # a.png and a.jpg: different overlays, but one label map pred/a.png
    jpg = tmp_path / 'x' / 'a.jpg'
    assert cv2.imwrite(str(jpg), cv2.imread(pair[0]))
    with pytest.raises(OutputPathError, match='pred/a.png'):
        inferencer([pair[0], str(jpg)], out_dir=str(out))
    err = _fails(capsys, tiny, *pair, '--out-dir', out)
    assert 'the same name' in err
    assert not out.exists()


def test_the_same_file_twice_is_segmented_once(tiny, tmp_path):
    link = tmp_path / 'link.png'
    link.symlink_to(tiny['images']['a'])
    out = tmp_path / 'out'
    res = _tool(tiny, tiny['images']['a'], tiny['images']['a'],
                '--out-dir', out)
    assert res['images'] == 1 and res['written'] == 4
    assert _files(out) == ['mask/a.png', 'pred/a.png', 'score/a.npy',
                           'vis/a.png']


def test_out_dir_that_is_a_file_or_under_one(tiny, tmp_path, capsys):
    f = tmp_path / 'notes.txt'
    f.write_text('keep me')
    err = _fails(capsys, tiny, tiny['images']['a'], '--out-dir', f)
    assert f'--out-dir {f} is a file' in err
    err = _fails(capsys, tiny, tiny['images']['a'], '--out-dir',
                 f / 'sub')
    assert str(f) in err and 'is a file' in err
    assert f.read_text() == 'keep me'


def test_a_subfolder_that_is_a_file(tiny, inferencer, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'pred').write_text('not a folder')
    with pytest.raises(OutputPathError, match='pred is a file'):
        inferencer(tiny['images']['a'], out_dir=str(out))
    assert (out / 'pred').read_text() == 'not a folder'


# --- videos ---------------------------------------------------------------


def test_a_video_is_written_whole(tiny, tmp_path):
    video = _video(tmp_path / 'drive.avi', 3)
    out = tmp_path / 'out'
    res = _tool(tiny, video, tiny['images']['a'], '--out-dir', out)
    assert res['frames'] == 3 and res['images'] == 1
    assert res['written'] == 4 + 2 * 3 + 1
    cap = cv2.VideoCapture(str(out / 'vis' / 'drive.mp4'))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (32, 16)
    cap.release()
    assert _files(out / 'mask' / 'drive') == [f'{i:06d}.png'
                                              for i in range(3)]
    _no_temporaries(out)


@pytest.mark.parametrize('kind', ['no frames', 'empty file', 'text'])
def test_an_empty_or_unreadable_video_is_named(tiny, tmp_path, capsys,
                                               kind):
    path = tmp_path / 'clip.avi'
    if kind == 'no frames':
        _video(path, 0)
    elif kind == 'empty file':
        path.write_bytes(b'')
    else:
        path.write_text('not a video')
    out = tmp_path / 'out'
    err = _fails(capsys, tiny, tiny['images']['a'], path, '--out-dir', out)
    assert str(path) in err
    assert ('has no frames' in err) if kind == 'no frames' else \
        ('cannot open video' in err or 'has no frames' in err)
    assert not out.exists()   # refused before any work


def test_a_video_yielding_no_frame_leaves_no_mp4(tiny, tmp_path, capsys,
                                                 monkeypatch):
    """The container claims frames, none decodes: a named error, no
    unplayable mp4, no empty frame folders."""
    import mmcv
    video = _video(tmp_path / 'clip.avi', 2)

    class NoFrames:
        def __init__(self, path):
            real = mmcv.video.VideoReader(path)
            self.opened, self.frame_cnt = real.opened, real.frame_cnt
            self.width, self.height, self.fps = real.width, real.height, 5

        def read(self):
            return None

        def __iter__(self):
            return iter(())

    monkeypatch.setattr(mmcv, 'VideoReader', NoFrames)
    out = tmp_path / 'out'
    err = _fails(capsys, tiny, video, '--out-dir', out)
    assert 'has no frame that decodes' in err and video in err
    assert _files(out) == []
    assert not (out / 'pred' / 'clip').exists()


def test_a_video_failing_part_way_leaves_the_old_mp4(tiny, tmp_path, capsys,
                                                     monkeypatch):
    video = _video(tmp_path / 'clip.avi', 3)
    out = tmp_path / 'out'
    _tool(tiny, video, '--out-dir', out)
    old = (out / 'vis' / 'clip.mp4').read_bytes()
    real = cv2.imwrite
    calls = []

    def imwrite(path, img, *args):
        calls.append(path)
        return False if len(calls) == 3 else real(path, img, *args)

    monkeypatch.setattr(cv2, 'imwrite', imwrite)
    err = _fails(capsys, tiny, video, '--out-dir', out)
    assert 'could not write' in err
    assert (out / 'vis' / 'clip.mp4').read_bytes() == old
    _no_temporaries(out)


def test_a_video_writer_that_does_not_open_is_an_error(tiny, tmp_path,
                                                      capsys, monkeypatch):
    video = _video(tmp_path / 'clip.avi', 2)

    class Closed:
        def __init__(self, *args):
            pass

        def isOpened(self):
            return False

        def write(self, frame):
            raise AssertionError('written to a closed writer')

        def release(self):
            pass

    monkeypatch.setattr(cv2, 'VideoWriter', Closed)
    out = tmp_path / 'out'
    err = _fails(capsys, tiny, video, '--out-dir', out)
    assert 'VideoWriter did not open' in err and 'clip.mp4' in err
    assert not [f for f in _files(out) if f.endswith('.mp4')]
    _no_temporaries(out)


# --- inputs ---------------------------------------------------------------


@pytest.mark.parametrize('case,expected', [
    ('missing', 'not found'),
    ('dangling link', 'not found'),
    ('empty folder', 'holds no images or videos'),
    ('folder of text', 'holds no images or videos'),
    ('text named png', 'cannot read image'),
    ('empty png', 'the file is empty'),
    ('unknown type', 'unknown file type'),
])
def test_inputs_that_are_no_images_are_named(tiny, tmp_path, capsys, case,
                                             expected):
    path = tmp_path / 'x.png'
    if case == 'dangling link':
        path.symlink_to(tmp_path / 'gone.png')
    elif case == 'empty folder':
        path = tmp_path / 'images'
        path.mkdir()
    elif case == 'folder of text':
        path = tmp_path / 'images'
        path.mkdir()
        (path / 'notes.txt').write_text('x')
    elif case == 'text named png':
        path.write_text('this is no image')
    elif case == 'empty png':
        path.write_bytes(b'')
    elif case == 'unknown type':
        path = tmp_path / 'x.gif2'
        path.write_text('x')
    out = tmp_path / 'out'
    # given after a good image: refused before that one is segmented
    err = _fails(capsys, tiny, tiny['images']['a'], path, '--out-dir', out)
    assert expected in err and str(path) in err
    assert not out.exists()


def test_a_truncated_image_is_named(tiny, inferencer, tmp_path, capsys):
    """A valid PNG header over a cut body passes the header check and
    fails at decoding, naming the file."""
    from mmseg_ood.apis import OODInputError
    data = open(tiny['images']['a'], 'rb').read()
    cut = tmp_path / 'cut.png'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(OODInputError, match=f'cannot read image {cut}'):
        inferencer(str(cut))
    err = _fails(capsys, tiny, cut, '--out-dir', tmp_path / 'out')
    assert f'cannot read image {cut}' in err


@pytest.mark.parametrize('kind', ['gray', 'gray16', 'rgba', 'bgr16'])
def test_grayscale_16_bit_and_rgba_pngs_are_read_as_mmseg_reads_them(
        tiny, inferencer, tmp_path, kind):
    """Each file gives the prediction of the 8-bit BGR image OpenCV
    decodes from it (what the test pipeline feeds the model)."""
    rng = np.random.default_rng(3)
    shape = {'gray': (20, 30), 'gray16': (20, 30), 'rgba': (20, 30, 4),
             'bgr16': (20, 30, 3)}[kind]
    dtype = np.uint16 if '16' in kind else np.uint8
    img = rng.integers(0, np.iinfo(dtype).max, shape, dtype)
    path = tmp_path / f'{kind}.png'
    assert cv2.imwrite(str(path), img)
    out = tmp_path / 'out'
    got = inferencer(str(path), out_dir=str(out))['predictions']
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr.dtype == np.uint8 and bgr.shape == (20, 30, 3)
    ref = inferencer(bgr)['predictions']
    np.testing.assert_array_equal(got['sem_seg'], ref['sem_seg'])
    np.testing.assert_allclose(got['ood_score'], ref['ood_score'],
                               rtol=0, atol=1e-5)
    assert got['sem_seg'].shape == (20, 30)
    vis = cv2.imread(str(out / 'vis' / f'{kind}.png'))  # with its legend
    assert vis.shape[0] >= 20 and vis.shape[1] > 30


def test_gray_and_bgra_arrays_are_converted_others_refused(tiny,
                                                           inferencer):
    from mmseg_ood.apis import OODInputError
    bgr = cv2.imread(tiny['images']['a'])
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    as_bgr = inferencer(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    for arr in (gray, gray[..., None]):
        np.testing.assert_array_equal(
            inferencer(arr)['predictions']['sem_seg'],
            as_bgr['predictions']['sem_seg'])
    bgra = np.concatenate([bgr, np.full(bgr.shape[:2] + (1, ), 7,
                                        np.uint8)], -1)
    np.testing.assert_array_equal(
        inferencer(bgra)['predictions']['ood_score'],
        inferencer(bgr)['predictions']['ood_score'])
    with pytest.raises(OODInputError, match='dtype float32'):
        inferencer(bgr.astype(np.float32))
    with pytest.raises(OODInputError, match=r'shape \(24, 40, 2\)'):
        inferencer(bgr[..., :2])
    with pytest.raises(OODInputError, match=r'shape \(0, 40, 3\)'):
        inferencer(bgr[:0])
    with pytest.raises(TypeError, match='got int'):
        inferencer(3)


# --- checkpoints, config, device ------------------------------------------


def test_a_checkpoint_without_meta_takes_the_config_classes(tiny,
                                                            tmp_path):
    from mmseg_ood.apis import OODInferencer, init_model
    bare = tmp_path / 'no_meta.pth'
    torch.save({'state_dict': tiny['state']}, bare)
    weights_only = tmp_path / 'state_dict_only.pth'
    torch.save(tiny['state'], weights_only)
    for path in (bare, weights_only):
        model = init_model(tiny['plain'], str(path))
        assert model.dataset_meta['classes'] == STREET_CLASSES
        assert len(model.dataset_meta['palette']) == 6
        for k, v in tiny['state'].items():
            assert torch.equal(model.state_dict()[k], v), k
    inf = OODInferencer(tiny['plain'], str(bare), scorer='energy',
                        threshold=THRESHOLD, show_progress=False)
    meta = inf.ood_segmentor.dataset_meta
    assert meta['classes'][:6] == STREET_CLASSES
    assert meta['classes'][6] == 'unknown'
    # the classes the checkpoint names win over the config's
    assert init_model(tiny['plain'], tiny['ckpt']).dataset_meta[
        'classes'] == list('abcdef')
    legacy = tmp_path / 'mmseg0x.pth'
    torch.save({'state_dict': tiny['state'],
                'meta': {'CLASSES': list('uvwxyz'),
                         'PALETTE': [[i, i, i] for i in range(6)]}}, legacy)
    meta = init_model(tiny['plain'], str(legacy)).dataset_meta
    assert meta['classes'] == list('uvwxyz') and meta['palette'][5] == [5] * 3


def test_the_tool_runs_a_checkpoint_without_meta(tiny, tmp_path):
    bare = tmp_path / 'no_meta.pth'
    torch.save({'state_dict': tiny['state']}, bare)
    out = tmp_path / 'out'
    res = _tool(tiny, tiny['images']['b'], '--out-dir', out, ckpt=str(bare))
    assert res['images'] == 1 and (out / 'vis' / 'b.png').is_file()


def test_a_config_without_classes_leaves_them_to_the_visualizer(tmp_path):
    from mmengine.config import Config

    from mmseg_ood.models.inference import config_dataset_meta
    assert config_dataset_meta(None) == dict(classes=None, palette=None)
    cfg = Config(dict(test_dataloader=dict(dataset=dict(
        type='SyntheticStreetDataset'))))
    assert config_dataset_meta(cfg, 6)['classes'] == STREET_CLASSES
    # another number of classes: not these names
    assert config_dataset_meta(cfg, 19)['classes'] is None
    own = Config(dict(test_dataloader=dict(dataset=dict(
        type='SyntheticStreetDataset', metainfo=dict(classes=['p', 'q'])))))
    assert config_dataset_meta(own, 2)['classes'] == ('p', 'q')


def test_wrong_nested_types_in_meta_are_named(tiny, tmp_path):
    from mmseg_ood.apis import init_model
    for meta, match in (({'dataset_meta': 'street'}, "dataset_meta'] must "
                         'be a dict'),
                        ({'dataset_meta': {'classes': 'abcdef'}},
                         'class names .* list of strings'),
                        ({'CLASSES': [1, 2, 3, 4, 5, 6]},
                         'class names .* list of strings')):
        path = tmp_path / 'odd.pth'
        torch.save({'state_dict': tiny['state'], 'meta': meta}, path)
        with pytest.raises(DamagedFileError, match=match) as e:
            init_model(tiny['plain'], str(path))
        assert str(path) in str(e.value)


@pytest.mark.parametrize('content', [b'', b'this is a text file\n',
                                     b'PK\x03\x04 truncated'])
def test_a_checkpoint_that_is_no_checkpoint_is_one_line(tiny, tmp_path,
                                                        capsys, content):
    bad = tmp_path / 'model.pth'
    bad.write_bytes(content)
    out = tmp_path / 'out'
    err = _fails(capsys, tiny, tiny['images']['a'], '--out-dir', out,
                 ckpt=str(bad))
    assert str(bad) in err
    assert bad.read_bytes() == content
    assert not out.exists() or _files(out) == []


def test_a_checkpoint_that_does_not_fit_is_one_line(tiny, tmp_path, capsys):
    state = dict(tiny['state'])
    state['decode_head.conv_seg.weight'] = torch.zeros(7, 12, 1, 1)
    wrong = tmp_path / 'seven.pth'
    torch.save({'state_dict': state}, wrong)
    err = _fails(capsys, tiny, tiny['images']['a'], '--out-dir',
                 tmp_path / 'out', ckpt=str(wrong))
    assert 'does not fit' in err and 'conv_seg' in err


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only '
                    'machine (there cuda:99 is refused for a missing CUDA)')
@pytest.mark.parametrize('device,expected', [
    ('cuda:99', 'CUDA is not available'),
    ('gpu0', 'is not a device'),
])
def test_a_device_this_machine_lacks_is_one_line(tiny, tmp_path, capsys,
                                                 device, expected):
    out = tmp_path / 'out'
    err = _fails(capsys, tiny, tiny['images']['a'], '--out-dir', out,
                 '--device', device)
    assert f'--device {device}' in err or f"--device '{device}'" in err
    assert expected in err
    assert not out.exists()
    from mmseg_ood.apis import OODInferencer, init_model
    with pytest.raises(InvalidValueError, match=expected):
        init_model(tiny['plain'], tiny['ckpt'], device=device)
    with pytest.raises(InvalidValueError, match=expected):
        OODInferencer(tiny['plain'], tiny['ckpt'], scorer='energy',
                      threshold=0.0, device=device)


@pytest.mark.parametrize('args,expected', [
    (['--out-dir', 'o', '--opacity', '2'], '--opacity must be in [0, 1]'),
    ([], 'give --out-dir (or --show)'),
    (['--out-dir', 'o', '--ood-label', '300'], '`ood_label`'),
])
def test_flag_values_are_one_line(tiny, capsys, args, expected, tmp_path,
                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        _tool(tiny, tiny['images']['a'], *args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and 'Traceback' not in err
    assert not (tmp_path / 'o').exists()


def test_a_missing_config_or_checkpoint_is_one_line(tiny, tmp_path, capsys):
    from mmseg_ood.tools.ood_infer import main
    gone = str(tmp_path / 'gone.pth')
    err = _fails(capsys, tiny, tiny['images']['a'], '--out-dir',
                 tmp_path / 'out', ckpt=gone)
    assert f'checkpoint file {gone} not found' in err
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / 'gone.py'), tiny['ckpt'], tiny['images']['a'],
              '--out-dir', str(tmp_path / 'out')])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert 'gone.py' in err and 'not found' in err and err.count('\n') == 1
