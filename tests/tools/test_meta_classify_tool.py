"""tools/meta_classify.py and ood_test --meta-classifier, end to end on the
tiny synthetic model.

The model of two training iterations is nearly uniform, so the thresholds
are quantiles of its own ``max_logit`` maps (whose values still vary from
pixel to pixel): every threshold then has true- and false-positive
segments.
"""
import glob
import json
import os.path as osp

import numpy as np
import pytest
from scipy import ndimage

from conftest import (ONE_THREAD_ENV, QUICK_OPTIONS, STREET_CONFIG, run_tool,
                      score_quantiles)


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


@pytest.fixture(scope='module')
def thresholds(trained_work_dir, synthetic_root, monkeypatch_module):
    monkeypatch_module.setenv('MMSEG_OOD_DATA', synthetic_root)
    return score_quantiles(STREET_CONFIG, _ckpt(trained_work_dir),
                           synthetic_root, 'max_logit', [0.6, 0.85])


@pytest.fixture(scope='module')
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope='module')
def meta_run(tmp_path_factory, trained_work_dir, synthetic_root, thresholds):
    work = str(tmp_path_factory.mktemp('meta'))
    save = osp.join(work, 'classifier', 'meta.json')
    proc = run_tool('meta_classify.py', STREET_CONFIG,
                    _ckpt(trained_work_dir), '--work-dir', work,
                    '--scorer', 'max_logit', '--thresholds',
                    *map(repr, thresholds), '--cv', '2', '--save', save,
                    '--cfg-options', *QUICK_OPTIONS,
                    env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    return work, save, proc


def test_writes_tables_figure_and_classifier(meta_run, synthetic_root,
                                            thresholds):
    work, save, proc = meta_run
    for name in ('meta_results.json', 'meta_results.csv', 'meta_results.md',
                 'detection_errors_synthetic_ood.png'):
        assert osp.getsize(osp.join(work, name)) > 0, name
    assert 'Table 2' in proc.stdout and save in proc.stdout
    payload = json.load(open(osp.join(work, 'meta_results.json')))
    assert payload['cv'] == 2
    # ground-truth objects: 8-connected components of the OOD pixels
    objects = 0
    for f in glob.glob(osp.join(synthetic_root, 'street', 'ood',
                                'labels_masks', '*.png')):
        import cv2
        objects += ndimage.label(cv2.imread(f, 0) == 1,
                                 structure=np.ones((3, 3)))[1]
    rows = payload['results']['synthetic_ood']
    assert list(rows) == [repr(t) for t in thresholds]
    for row in rows.values():
        assert row['images'] == 3
        for variant in ('baseline', 'meta'):
            e = row[variant]
            assert e['errors'] == e['fp'] + e['fn']
            assert e['segments'] == e['tp'] + e['fp']
            assert e['objects'] == objects
            assert 0 <= e['id_miss_rate'] <= 1
        base = row['baseline']
        assert base['tp'] > 0 and base['fp'] > 0
        assert row['cv'] == '2-fold grouped by image (3 images)'
        assert 0 <= row['meta_auroc'] <= 1 and 0 <= row['msp_auprc'] <= 1
    md = open(osp.join(work, 'meta_results.md')).read()
    assert 'Table 3' in md and f'| {thresholds[0]!r} |' in md
    assert '2-fold grouped by image (3 images)' in md
    csv_rows = open(osp.join(work, 'meta_results.csv')).read().splitlines()
    assert len(csv_rows) == 1 + 2 * len(thresholds)   # header, 2 variants


def test_saved_classifier_is_plain_json(meta_run, thresholds):
    from mmseg_ood.meta import load_meta_classifiers
    _, save, _ = meta_run
    d = json.load(open(save))
    assert d['scorer'] == 'max_logit' and d['num_classes'] == 6
    assert d['datasets'] == ['synthetic_ood']
    clfs = load_meta_classifiers(save, 'max_logit')
    assert [c.threshold for c in clfs] == thresholds


def test_ood_test_applies_the_classifier(meta_run, tmp_path, synthetic_root,
                                         trained_work_dir, thresholds):
    work, save, _ = meta_run
    out = str(tmp_path / 'ood')
    run_tool('ood_test.py', STREET_CONFIG, _ckpt(trained_work_dir),
             '--work-dir', out, '--scorers', 'max_logit', 'msp',
             '--meta-classifier', save, '--no-id-eval', '--cfg-options',
             *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    payload = json.load(open(osp.join(out, 'results.json')))
    assert payload['id_miou'] == {}        # --no-id-eval
    scorers = payload['results']['synthetic_ood']
    for t in thresholds:
        assert f'max_logit+meta@{t!r}' in scorers
    segments = payload['segments']['synthetic_ood']
    meta = json.load(open(osp.join(work, 'meta_results.json')))
    for key, row in meta['results']['synthetic_ood'].items():
        # the same model on the same images: the same segments
        assert segments[key]['baseline'] == row['baseline']
        assert segments[key]['msp_auroc'] == row['msp_auroc']
    assert '## Segments on synthetic_ood' in open(
        osp.join(out, 'results.md')).read()


def test_a_classifier_of_another_scorer_is_refused(meta_run, tmp_path,
                                                   trained_work_dir):
    _, save, _ = meta_run
    proc = run_tool('ood_test.py', STREET_CONFIG, _ckpt(trained_work_dir),
                    '--work-dir', str(tmp_path), '--scorers', 'entropy',
                    '--meta-classifier', save, check=False)
    assert proc.returncode != 0
    assert "reads 'max_logit' maps, which are not among the scorers " \
        "['entropy']" in proc.stderr
    assert not osp.exists(osp.join(tmp_path, 'results.json'))


def test_bad_arguments_are_refused_before_anything_runs(tmp_path, capsys):
    """One line, exit status 2 (the tool's main in-process, as its script
    runs it), before the missing checkpoint is even looked at."""
    from mmseg_ood.tools.meta_classify import main
    for args, message in (
            (['--cv', '1'], "'loo', 'auto' or a number of folds >= 2"),
            (['--scorer', 'nope'], 'nope'),
            (['--thresholds', '0.5', '0.5'], 'repeats a value')):
        with pytest.raises(SystemExit) as e:
            main([STREET_CONFIG, 'missing.pth', '--work-dir', str(tmp_path),
                  *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err, err
        assert 'Traceback' not in err and 'missing.pth' not in err


def test_a_failed_run_leaves_the_previous_results(meta_run, tmp_path,
                                                  trained_work_dir):
    """Bad input found once the run has started (a missing data root)
    changes none of the files an earlier run wrote."""
    work, save, _ = meta_run
    names = ('meta_results.json', 'meta_results.csv', 'meta_results.md')
    before = {n: open(osp.join(work, n), 'rb').read() for n in names}
    saved = open(save, 'rb').read()
    proc = run_tool('meta_classify.py', STREET_CONFIG,
                    _ckpt(trained_work_dir), '--work-dir', work,
                    '--datasets', 'road_anomaly21',
                    '--save', save,
                    env={'SMIYC_ROOT': str(tmp_path / 'nowhere')},
                    check=False)
    assert proc.returncode != 0 and 'nowhere' in proc.stderr
    for n in names:
        assert open(osp.join(work, n), 'rb').read() == before[n], n
    assert open(save, 'rb').read() == saved
