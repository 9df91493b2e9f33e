"""ImageCorruption: ImageNet-C corruptions, deterministic per image."""
import os
import subprocess
import sys

import numpy as np
import pytest

from mmseg_ood.datasets import CORRUPTIONS, ImageCorruption, with_corruption


def image(seed=0, h=48, w=64):
    """A smooth colour image (corruptions act on structure, not noise)."""
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    img = np.stack([(xx * 4 + 30 * c + rng.integers(0, 20)) % 256
                    for c in range(3)], -1)
    img[h // 3:2 * h // 3, w // 4:w // 2] = (200, 40, 90)
    return img.astype(np.uint8)


def run(corruption, severity, img, path='a/0001.png', seed=0):
    t = ImageCorruption(corruption, severity, seed)
    out = t(dict(img=img.copy(), img_path=path))
    return out['img'], out['corruption']


@pytest.mark.parametrize('corruption', CORRUPTIONS)
def test_every_corruption_runs_and_changes_the_image(corruption):
    img = image()
    out, tag = run(corruption, 3, img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert tag == f'{corruption}@3'
    assert (out != img).any()


@pytest.mark.parametrize('corruption', ['gaussian_noise', 'glass_blur',
                                        'impulse_noise', 'snow', 'frost',
                                        'elastic_transform'])
def test_same_image_same_bytes_other_image_or_severity_other_bytes(
        corruption):
    img = image()
    a, _ = run(corruption, 2, img)
    np.random.seed(123)   # the global generator does not matter ...
    state = np.random.get_state()
    b, _ = run(corruption, 2, img)
    # ... and is left as it was
    assert np.random.get_state()[1].tolist() == state[1].tolist()
    assert a.tobytes() == b.tobytes()
    assert run(corruption, 2, img, path='a/0002.png')[0].tobytes() != \
        a.tobytes()
    assert run(corruption, 4, img)[0].tobytes() != a.tobytes()
    assert run(corruption, 2, img, seed=1)[0].tobytes() != a.tobytes()


def test_the_same_in_another_process():
    here = os.path.dirname(os.path.abspath(__file__))
    code = ('import sys, numpy as np\n'
            f'sys.path.insert(0, {here!r})\n'
            'from test_corruption import image, run\n'
            'sys.stdout.write(run("shot_noise", 5, image())[0].tobytes()'
            '.hex())\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, check=True)
    assert proc.stdout == run('shot_noise', 5, image())[0].tobytes().hex()


def test_severity_zero_is_the_identity():
    img = image()
    out, tag = run('fog', 0, img)
    assert out is not None and np.array_equal(out, img) and tag == 'fog@0'


def test_grey_images():
    img = image()[..., 0]
    out, _ = run('contrast', 2, img)
    assert out.shape == img.shape and (out != img).any()


def test_bad_arguments_and_images():
    with pytest.raises(ValueError, match="`corruption` must be one of"):
        ImageCorruption('rain', 1)
    for bad in (6, -1, 2.0, True):
        with pytest.raises(ValueError, match='`severity` must be an int'):
            ImageCorruption('fog', bad)
    with pytest.raises(ValueError, match=r'x\.png.*at least 32 x 32 pixels, '
                       'got 40 x 20'):
        run('fog', 1, np.zeros((20, 40, 3), np.uint8), path='x.png')
    with pytest.raises(ValueError, match='uint8 image, got float32'):
        run('fog', 1, np.zeros((40, 40, 3), np.float32))


def test_with_corruption_goes_right_after_loading():
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(64, 32)),
                dict(type='PackSegInputs')]
    out = with_corruption(pipeline, 'fog', 2)
    assert [t['type'] for t in out] == ['LoadImageFromFile', 'ImageCorruption',
                                        'Resize', 'PackSegInputs']
    assert pipeline[1]['type'] == 'Resize'   # the input is not changed
    with pytest.raises(ValueError, match='no LoadImageFromFile'):
        with_corruption(pipeline[1:], 'fog', 2)
    with pytest.raises(ValueError, match='`severity`'):
        with_corruption(pipeline, 'fog', 9)


def test_the_cache_gives_the_same_pixels_and_is_read_back(tmp_path):
    img = image()
    t = ImageCorruption('glass_blur', 2, cache_dir=str(tmp_path))
    first = t(dict(img=img.copy(), img_path='a/0001.png'))['img']
    path = t.cache_path('a/0001.png')
    assert first.tobytes() == run('glass_blur', 2, img)[0].tobytes()
    # the cached file is what a second model reads: mark it to see that
    import cv2
    marked = first.copy()
    marked[0, 0] = (1, 2, 3)
    cv2.imwrite(path, marked)
    again = t(dict(img=img.copy(), img_path='a/0001.png'))['img']
    assert (again[0, 0] == (1, 2, 3)).all()
    other = ImageCorruption('glass_blur', 3, cache_dir=str(tmp_path))
    assert other.cache_path('a/0001.png') != path
