"""tools/analyze_representation.py (SCrIBE sec. 4, Fig. 3-4) end to end on
the tiny synthetic model, its numbers against numpy on the model's own
logits, and its refusals before anything runs."""
import glob
import importlib
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from conftest import (ONE_THREAD_ENV, QUICK_CFG, QUICK_OPTIONS, STREET_CONFIG,
                      one_thread, run_tool)

NAMES = ('baseline', 'again')


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def _val_images(root):
    # the street config's test set is its val split
    return sorted(glob.glob(osp.join(root, 'street', 'images', 'val',
                                     '*.png')))


@pytest.fixture(scope='module')
def tool_run(tmp_path_factory, trained_work_dir, synthetic_root):
    """The same checkpoint twice, under two names; class 0 is one the
    two-iteration model never predicts (an undefined matrix). On one
    thread, as ``reference`` (the forward pass differs in its last bits
    across thread counts, and the argmax counts are compared exactly)."""
    work = str(tmp_path_factory.mktemp('representation'))
    ckpt = _ckpt(trained_work_dir)
    proc = run_tool('analyze_representation.py', STREET_CONFIG, ckpt,
                    STREET_CONFIG, ckpt, '--work-dir', work, '--names',
                    *NAMES, '--classes', '0', '4', '--cfg-options',
                    *QUICK_OPTIONS,
                    env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    payload = json.load(open(osp.join(work, 'representation.json')))
    return work, payload, proc


@pytest.fixture(scope='module')
def reference(trained_work_dir, synthetic_root):
    """Every pixel's logit vector of the test images (mmseg's
    ``inference_model``, the config's test pipeline), as ``(k, pixels)``
    float64, on one thread as ``tool_run``."""
    from mmseg.apis import inference_model

    from mmseg_ood.apis import init_model
    model = init_model(STREET_CONFIG, _ckpt(trained_work_dir))
    with one_thread():
        logits = [inference_model(model, f).seg_logits.data.cpu().numpy()
                  for f in _val_images(synthetic_root)]
    return np.concatenate([v.reshape(v.shape[0], -1) for v in logits],
                          1).astype(np.float64)


def test_writes_table_figures_and_identical_models(tool_run,
                                                   synthetic_root):
    work, payload, proc = tool_run
    for name in ('representation.json', 'representation.md',
                 'explained_variance.png', 'autocorrelation_class0.png',
                 'autocorrelation_class4.png'):
        assert osp.getsize(osp.join(work, name)) > 0, name
    for name in NAMES:  # each model's logs in its own directory
        assert glob.glob(osp.join(work, name, '*', '*.log'))
    assert payload['classes'] == [0, 4]
    assert list(payload['models']) == list(NAMES)
    first, second = (payload['models'][n] for n in NAMES)
    assert first['checkpoint'] == second['checkpoint']
    for key in ('pixels', 'pixels_per_class', 'explained_variance',
                'dims_90', 'dims_95', 'autocorrelation'):
        assert first[key] == second[key], key
    k = first['num_classes']
    assert k == 6 and len(first['explained_variance']) == k
    assert 1 <= first['dims_90'] <= first['dims_95'] <= k
    ev = np.array(first['explained_variance'])
    assert (np.diff(ev) >= -1e-12).all()
    assert ev[-1] == pytest.approx(1.0)
    pixels = sum(cv2.imread(f).shape[0] * cv2.imread(f).shape[1]
                 for f in _val_images(synthetic_root))
    assert first['pixels'] == pixels == sum(first['pixels_per_class'])
    # the auto-correlation of every class: (k, k), null where undefined
    assert len(first['autocorrelation']) == k
    for c, n in enumerate(first['pixels_per_class']):
        r = first['autocorrelation'][c]
        assert np.shape(r) == (k, k)
        if n == 0:
            assert all(v is None for row in r for v in row)
        else:
            np.testing.assert_allclose(np.diag(np.array(r, float)), 1)
    table = ['| model | k | pixels | dims 90% | dims 95% |',
             '|---|---|---|---|---|'] + [
                 f'| {n} | 6 | {pixels} | {first["dims_90"]} | '
                 f'{first["dims_95"]} |' for n in NAMES]
    assert '\n'.join(table) in proc.stdout
    assert '\n'.join(table) in open(osp.join(work,
                                             'representation.md')).read()


def test_numbers_equal_numpy_on_the_logits(tool_run, reference):
    _, payload, _ = tool_run
    v = reference
    eig = np.sort(np.linalg.eigvalsh(np.cov(v, bias=True)))[::-1]
    expected = np.cumsum(eig) / eig.sum()
    pred = v.argmax(0)
    # the same logits (both sides on one thread); the tolerance covers the
    # float64 sums, streamed by the tool, in one go by numpy
    for record in payload['models'].values():
        np.testing.assert_allclose(record['explained_variance'], expected,
                                   rtol=1e-6)
        assert record['dims_90'] == int(np.argmax(expected >= 0.9)) + 1
        assert record['dims_95'] == int(np.argmax(expected >= 0.95)) + 1
        assert record['pixels_per_class'] == np.bincount(
            pred, minlength=v.shape[0]).tolist()
        for c in np.unique(pred):
            vc = v[:, pred == c]
            r = vc @ vc.T / vc.shape[1]
            np.testing.assert_allclose(
                record['autocorrelation'][c],
                r / np.sqrt(np.outer(np.diag(r), np.diag(r))), rtol=1e-6,
                atol=1e-9)


def test_default_class_is_the_most_predicted(tmp_path, trained_work_dir,
                                             synthetic_root, monkeypatch):
    from mmseg_ood.apis import analyze_representation
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    payload = analyze_representation(
        [(STREET_CONFIG, _ckpt(trained_work_dir))], str(tmp_path),
        cfg_options=dict(QUICK_CFG))
    (name, record), = payload['models'].items()
    assert name == osp.splitext(osp.basename(STREET_CONFIG))[0]
    c = int(np.argmax(record['pixels_per_class']))
    assert payload['classes'] == [c]
    assert payload['files'][f'autocorrelation_class{c}'] == osp.join(
        str(tmp_path), f'autocorrelation_class{c}.png')
    assert osp.isfile(payload['files'][f'autocorrelation_class{c}'])


def test_writer_takes_models_of_different_k(tmp_path):
    """Models of 3 and 5 classes on one figure; a class never predicted is
    an empty panel (with a warning) and nulls in the JSON."""
    module = importlib.import_module('mmseg_ood.apis.analyze_representation')
    from mmseg_ood.evaluation import RepresentationAccumulator
    from mmseg_ood.reports.representation import write_representation
    rng = np.random.default_rng(0)
    accs, records = {}, {}
    for name, k in (('three', 3), ('five', 5)):
        v = rng.normal(size=(k, 8, 9))
        v[2] -= 10  # class 2 is never predicted
        accs[name] = RepresentationAccumulator(k).update(v)
        records[name] = module._model_record('c.py', 'w.pth', accs[name],
                                             None)
    payload = dict(classes=[0, 2], models=records)
    with pytest.warns(UserWarning, match='never predicts class 2'):
        paths = write_representation(str(tmp_path), payload, accs)
    for path in paths.values():
        assert osp.getsize(path) > 0, path
    data = json.load(open(paths['json']))
    assert [len(data['models'][n]['explained_variance'])
            for n in ('three', 'five')] == [3, 5]
    assert data['models']['five']['autocorrelation'][2][0] == [None] * 5
    assert '| five | 5 | 72 |' in open(paths['md']).read()
    assert not glob.glob(str(tmp_path / '*.tmp'))


# --- refusals, before anything runs ------------------------------------------
def _refused(tmp_path, argv, error, match):
    """One line and exit status 2 through the tool; ``--debug`` raises
    ``error``; nothing written either way."""
    import contextlib
    import io
    import re

    from mmseg_ood.tools.analyze_representation import main
    work = tmp_path / 'out'
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        main([*argv, '--work-dir', str(work)])
    assert e.value.code == 2
    lines = err.getvalue().strip().splitlines()
    assert lines[-1].startswith('analyze_representation: error: ')
    assert re.search(match, lines[-1]), lines[-1]
    with pytest.raises(error, match=match):
        main([*argv, '--work-dir', str(work), '--debug'])
    assert not work.exists()


def test_odd_number_of_positionals_is_an_argparse_error(tmp_path, capsys):
    from mmseg_ood.tools.analyze_representation import main
    with pytest.raises(SystemExit):
        main([STREET_CONFIG, 'a.pth', STREET_CONFIG, '--work-dir',
              str(tmp_path / 'out')])
    assert 'CONFIG CHECKPOINT pairs; got 3' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()
    proc = run_tool('analyze_representation.py', STREET_CONFIG,
                    '--work-dir', str(tmp_path / 'cli'), check=False)
    assert proc.returncode == 2
    assert 'CONFIG CHECKPOINT pairs; got 1' in proc.stderr
    assert not (tmp_path / 'cli').exists()


def test_bad_names_classes_and_files_are_refused(tmp_path, trained_work_dir):
    ckpt = _ckpt(trained_work_dir)
    two = [STREET_CONFIG, ckpt, STREET_CONFIG, ckpt]
    _refused(tmp_path, [*two, '--names', 'a'], ValueError,
             'one name per model: 2 model')
    _refused(tmp_path, [*two, '--names', 'a', 'a'], ValueError,
             r"unique; `names` repeat \['a'\]")
    _refused(tmp_path, two, ValueError, 'unique; the config file names')
    _refused(tmp_path, [*two, '--names', 'a', 'b/c'], ValueError,
             'directory names')
    _refused(tmp_path, [STREET_CONFIG, 'missing.pth'], FileNotFoundError,
             "missing.pth")
    _refused(tmp_path, ['missing.py', ckpt], FileNotFoundError,
             'missing.py')
    _refused(tmp_path, [*two, '--names', 'a', 'b', '--classes', '99'],
             ValueError, r"\[99\] out of range for model 'a': it has k=6")
    _refused(tmp_path, [STREET_CONFIG, ckpt, '--classes', '-1'], ValueError,
             'ints >= 0')


def test_models_must_be_pairs(tmp_path):
    from mmseg_ood.apis import analyze_representation
    for models in ([], STREET_CONFIG, [STREET_CONFIG, 'a.pth'],
                   [(STREET_CONFIG, 'a.pth', 'b')]):
        with pytest.raises(ValueError, match='models'):
            analyze_representation(models, str(tmp_path / 'out'))
    assert not (tmp_path / 'out').exists()


def test_classes_are_checked_against_the_logits_after_the_pass(
        tmp_path, trained_work_dir, synthetic_root, monkeypatch):
    """Where the config does not say k, the pass tells."""
    # (the package exports the function under the module's name)
    module = importlib.import_module('mmseg_ood.apis.analyze_representation')
    monkeypatch.setattr(module, 'config_num_classes', lambda cfg: None)
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    with pytest.raises(ValueError, match="out of range for model 'm': it "
                       'has k=6'):
        module.analyze_representation(
            [(STREET_CONFIG, _ckpt(trained_work_dir))], str(tmp_path),
            names=['m'], classes=[99], cfg_options=dict(QUICK_CFG))
    assert not glob.glob(str(tmp_path / 'representation.*'))


@pytest.mark.slow  # the suite keeps ood_test's and calibrate's
def test_two_processes_equal_one(tmp_path, tool_run, trained_work_dir,
                                synthetic_root):
    """Each rank accumulates its image; the merge gives one process's
    numbers (up to the order of the float64 sums merged). A rank
    that sees no image of its own is covered in test_representation.py
    (an empty accumulator takes the size it merges)."""
    _, one, _ = tool_run
    work = str(tmp_path / 'dist')
    proc = run_tool('analyze_representation.py', STREET_CONFIG,
                    _ckpt(trained_work_dir), '--work-dir', work, '--names',
                    'baseline', '--classes', '4', '--cfg-options',
                    *QUICK_OPTIONS, env={'MMSEG_OOD_DATA': synthetic_root,
                                         'OMP_NUM_THREADS': '1'},
                    nproc=2)
    assert proc.stdout.count('| model | k |') == 1   # rank 0 prints
    three = json.load(open(osp.join(work, 'representation.json')))
    a, b = one['models']['baseline'], three['models']['baseline']
    assert b['pixels_per_class'] == a['pixels_per_class']
    np.testing.assert_allclose(b['explained_variance'],
                               a['explained_variance'], rtol=1e-6)
    np.testing.assert_allclose(b['autocorrelation'][4],
                               a['autocorrelation'][4], rtol=1e-6)
