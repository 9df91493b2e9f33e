"""``ood_test --vis-backend tensorboard``: the scalars of results.json and
the figures, sent through mmengine's visualizer, read back from the event
file with TensorBoard's own reader."""
import glob
import json
import os.path as osp

import pytest

from conftest import (ONE_THREAD_ENV, QUICK_OPTIONS, STREET_CONFIG, run_tool,
                      tensorboard_events)
from mmseg_ood.engine.tracking import add_vis_backends, result_scalars


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def _assert_sent(folder, expected):
    """Every scalar of ``expected`` is in the event file, once, at step 0,
    with its value; returns the image tags."""
    assert expected
    scalars, images = tensorboard_events(folder)
    for name, value in expected.items():
        assert name in scalars, name
        ((step, got), ) = scalars[name]
        assert step == 0 and got == pytest.approx(value, rel=1e-6), name
    return set(images)


def test_tensorboard_scalars_equal_results_json(tmp_path, synthetic_root,
                                                trained_work_dir):
    pytest.importorskip('tensorboard', reason="the [tracking] extra")
    run_tool('ood_test.py', STREET_CONFIG, _ckpt(trained_work_dir),
             '--work-dir', str(tmp_path), '--scorers', 'msp', 'energy',
             '--vis-backend', 'tensorboard', '--cfg-options', *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    payload = json.loads((tmp_path / 'results.json').read_text())
    expected = result_scalars(payload)
    assert 'ood/synthetic_ood/energy/ap' in expected
    assert 'id/test_set/miou' in expected
    scalars, images = tensorboard_events(tmp_path)
    for name, value in expected.items():
        assert name in scalars, name
        ((_, got), ) = scalars[name]
        assert got == pytest.approx(value, rel=1e-6), name
    # the ROC / PR curves and the score distributions, as images
    figures = sorted(
        osp.relpath(p, tmp_path)
        for d in ('curves', 'distributions')
        for p in glob.glob(str(tmp_path / d / '*.png')))
    assert figures and sorted(images) == figures


def test_result_scalars_skip_undefined_values():
    payload = dict(results=dict(d=dict(s=dict(
        auroc=0.5, ap=float('nan'), fpr95=None, siou=0.25))),
        id_miou=dict(test_set=91.5))
    assert result_scalars(payload) == {'ood/d/s/auroc': 0.5,
                                       'ood/d/s/siou': 0.25,
                                       'id/test_set/miou': 91.5}


def test_backends_are_added_once_and_unknown_ones_named():
    cfg = dict(visualizer=dict(type='SegLocalVisualizer',
                               vis_backends=[dict(type='LocalVisBackend')]))

    class Cfg(dict):
        def get(self, key, default=None):
            return dict.get(self, key, default)

    cfg = Cfg(cfg)
    pytest.importorskip('tensorboard')
    add_vis_backends(cfg, ['tensorboard', 'tensorboard'])
    assert [b['type'] for b in cfg['visualizer']['vis_backends']] == [
        'LocalVisBackend', 'TensorboardVisBackend']
    with pytest.raises(ValueError, match="unknown visualizer backend "
                       "'tensorbord'; known: mlflow, tensorboard, wandb"):
        add_vis_backends(cfg, ['tensorbord'])


def test_mlflow_metrics_equal_results_json(tmp_path, synthetic_root,
                                           trained_work_dir, monkeypatch):
    """``--vis-backend mlflow`` tracks in ``<work_dir>/mlruns`` (a local
    file store, allowed by MLFLOW_ALLOW_FILE_STORE); every metric read back
    with MLflow's client equals results.json through the name mapping."""
    pytest.importorskip('mlflow', reason="the [tracking] extra")
    from mlflow.tracking import MlflowClient
    run_tool('ood_test.py', STREET_CONFIG, _ckpt(trained_work_dir),
             '--work-dir', str(tmp_path), '--scorers', 'msp',
             'n_energy:eta=1.5', '--vis-backend', 'mlflow',
             '--cfg-options', *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root,
                  'MLFLOW_ALLOW_FILE_STORE': 'true',
                  'MLFLOW_TRACKING_URI': '', **ONE_THREAD_ENV})
    payload = json.loads((tmp_path / 'results.json').read_text())
    expected = result_scalars(payload)
    # the scorer spec's '=' is mapped: MLflow refuses it in names
    assert 'ood/synthetic_ood/n_energy:eta-1.5/ap' in expected
    store = tmp_path / 'mlruns'
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
    assert store.is_dir()
    client = MlflowClient(tracking_uri=f'file://{store}')
    runs = [r for e in client.search_experiments()
            for r in client.search_runs([e.experiment_id])]
    metrics = {}
    for run in runs:
        metrics.update(run.data.metrics)
    for name, value in expected.items():
        assert metrics.get(name) == pytest.approx(value, rel=1e-6), name
        (run_id, ) = [r.info.run_id for r in runs
                      if name in r.data.metrics]
        (m, ) = client.get_metric_history(run_id, name)
        assert m.value == pytest.approx(value, rel=1e-6) and m.step == 0


def test_mlflow_file_store_refused_without_the_variable(tmp_path,
                                                        monkeypatch):
    pytest.importorskip('mlflow')
    import mlflow.environment_variables as env
    if not hasattr(env, 'MLFLOW_ALLOW_FILE_STORE'):
        pytest.skip('MLflow 2 takes file stores')
    from mmseg_ood.engine.tracking import mlflow_tracking_uri
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    monkeypatch.delenv('MLFLOW_ALLOW_FILE_STORE', raising=False)
    with pytest.raises(ValueError, match='MLFLOW_ALLOW_FILE_STORE=true'):
        mlflow_tracking_uri(str(tmp_path))
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
    assert mlflow_tracking_uri(str(tmp_path)) == \
        f'file://{tmp_path}/mlruns'
    monkeypatch.setenv('MLFLOW_TRACKING_URI', 'http://tracking:5000')
    assert mlflow_tracking_uri(str(tmp_path)) == 'http://tracking:5000'


def test_tracking_names_are_mlflow_safe_and_collisions_refused():
    from mmseg_ood.engine.tracking import tracking_name, tracking_scalars
    assert tracking_name('ood/d/msp/ap') == 'ood/d/msp/ap'
    assert tracking_name('ood/d/knn:k=10,layer=-1/ap') == \
        'ood/d/knn:k-10:layer--1/ap'
    assert tracking_name('a(b)+c') == 'a_b__c'
    with pytest.raises(ValueError, match="'s:a=1' and 's:a-1' both become "
                       "'s:a-1'"):
        tracking_scalars({'s:a=1': 1.0, 's:a-1': 2.0})


def test_robustness_test_sends_its_cells(tmp_path, synthetic_root,
                                         trained_work_dir):
    pytest.importorskip('tensorboard', reason="the [tracking] extra")
    from mmseg_ood.engine.tracking import robustness_scalars
    work = tmp_path / 'robust'
    run_tool('robustness_test.py', STREET_CONFIG, _ckpt(trained_work_dir),
             '--names', 'a', '--work-dir', str(work), '--corruptions', 'fog',
             '--severities', '2', '--ood-datasets', 'synthetic_ood',
             '--vis-backend', 'tensorboard', '--cfg-options', *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    payload = json.loads((work / 'robustness.json').read_text())
    expected = robustness_scalars(payload)
    assert {'robustness/a/clean/0/miou', 'robustness/a/fog/2/ece',
            'robustness/a/fog/2/ood/synthetic_ood/energy/auroc'} <= \
        set(expected)
    images = _assert_sent(work / 'a', expected)
    assert images == {'fig5_severity.png', 'fig6_examples.png'}


def test_meta_classify_sends_its_results(tmp_path, synthetic_root,
                                         trained_work_dir):
    pytest.importorskip('tensorboard', reason="the [tracking] extra")
    from mmseg_ood.engine.tracking import meta_scalars
    from conftest import score_quantiles
    work = tmp_path / 'meta'
    ckpt = _ckpt(trained_work_dir)
    (t, ) = score_quantiles(STREET_CONFIG, ckpt, synthetic_root, 'max_logit',
                            [0.85])
    run_tool('meta_classify.py', STREET_CONFIG, ckpt,
             '--work-dir', str(work), '--scorer', 'max_logit',
             '--thresholds', repr(t), '--cv', '2', '--vis-backend',
             'tensorboard', '--cfg-options', *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    payload = json.loads((work / 'meta_results.json').read_text())
    expected = meta_scalars(payload)
    assert any(n.startswith('meta/synthetic_ood/') and
               n.endswith('/msp_auroc') for n in expected), expected
    images = _assert_sent(work, expected)
    assert images == {'detection_errors_synthetic_ood.png'}


def test_calibrate_ood_sends_the_threshold(tmp_path, synthetic_root,
                                           trained_work_dir):
    pytest.importorskip('tensorboard', reason="the [tracking] extra")
    from mmseg_ood.engine.tracking import calibration_scalars
    from mmseg_ood.formats.threshold_file import OODCalibration
    work = tmp_path / 'cal'
    run_tool('calibrate_ood.py', STREET_CONFIG, _ckpt(trained_work_dir),
             '--scorer', 'energy', '--id-fpr', '0.05', '--work-dir',
             str(work), '--vis-backend', 'tensorboard', '--cfg-options',
             *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    cal = OODCalibration.load(str(work / 'calibration.json'))
    expected = calibration_scalars(cal)
    assert expected['calibration/energy/threshold'] == \
        pytest.approx(cal.threshold)
    assert expected['calibration/energy/target'] == 0.05
    assert 'calibration/energy/achieved/id_fpr/value' in expected
    _assert_sent(work, expected)


def test_compare_results_sends_each_run(tmp_path, synthetic_root,
                                        trained_work_dir, capsys):
    pytest.importorskip('tensorboard', reason="the [tracking] extra")
    from mmseg_ood.engine.tracking import comparison_scalars
    from mmseg_ood.tools.analysis.compare_results import main
    root = tmp_path / 'root'
    run_tool('ood_test.py', STREET_CONFIG, _ckpt(trained_work_dir),
             '--work-dir', str(root / 'a' / 'ood'), '--scorers', 'msp',
             '--no-id-eval', '--cfg-options', *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    import shutil
    shutil.copytree(root / 'a', root / 'b')
    out = tmp_path / 'out'
    out.mkdir()
    main([str(root), 'a', 'b', '--scorers', 'msp', '--out',
          str(out / 'table.md'), '--vis-backend', 'tensorboard'])
    runs = {n: json.loads((root / n / 'ood' / 'results.json').read_text())
            for n in 'ab'}
    expected = comparison_scalars(runs)
    assert {'compare/a/ood/synthetic_ood/msp/auroc',
            'compare/b/ood/synthetic_ood/msp/auroc'} <= set(expected)
    _assert_sent(out / 'vis_data', expected)


def test_tools_refuse_an_unknown_backend(tmp_path):
    proc = run_tool('calibrate_ood.py', STREET_CONFIG, 'missing.pth',
                    '--id-fpr', '0.05', '--vis-backend', 'tensorbord',
                    check=False)
    assert proc.returncode == 2
    assert "invalid choice: 'tensorbord'" in proc.stderr
