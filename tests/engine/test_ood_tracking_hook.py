"""OOD validation during training, tracked in TensorBoard: the scalars of
``OODMetric`` (sent by mmengine's ``LoggerHook``) and the figures of
``OODTrackingHook``, read back from the event file with TensorBoard's own
reader and compared with the values the run logged."""
import glob
import json
import os.path as osp

import pytest

from conftest import (ONE_THREAD_ENV, QUICK_OPTIONS, STREET_CONFIG, run_tool,
                      tensorboard_events)


def _config(tmp_path, synthetic_root,
            backend="dict(type='TensorboardVisBackend')"):
    path = tmp_path / 'ood_val.py'
    path.write_text(
        f'_base_ = [{STREET_CONFIG!r}]\n'
        'val_dataloader = dict(dataset=dict(\n'
        "    _delete_=True, type='SyntheticOODDataset',\n"
        f"    data_root={synthetic_root + '/street/ood'!r},\n"
        '    pipeline={{_base_.test_pipeline}}))\n'
        "val_evaluator = dict(_delete_=True, type='OODMetric',\n"
        "                     component_threshold=None)\n"
        'custom_hooks = [\n'
        "    dict(type='OODScoringHook', scorers=['msp', 'energy'],\n"
        '         val=True),\n'
        "    dict(type='OODTrackingHook', num_heatmaps=1)]\n"
        "visualizer = dict(type='SegLocalVisualizer', name='visualizer',\n"
        "                  vis_backends=[dict(type='LocalVisBackend'),\n"
        f'                                {backend}])\n')
    return str(path)


def test_ood_validation_reaches_tensorboard(tmp_path, synthetic_root):
    pytest.importorskip('tensorboard', reason="the [tracking] extra")
    work = tmp_path / 'work'
    run_tool('train.py', _config(tmp_path, synthetic_root), '--work-dir',
             str(work), '--cfg-options', *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    (vis_data, ) = glob.glob(str(work / '*' / 'vis_data'))
    # what LoggerHook logged after the validation (LocalVisBackend's JSON)
    with open(osp.join(vis_data, 'scalars.json')) as f:
        logged = [json.loads(line) for line in f if line.strip()]
    (val, ) = [r for r in logged if 'ood/msp/auroc' in r]
    ood = {k: v for k, v in val.items() if k.startswith('ood/')}
    assert {'ood/msp/auroc', 'ood/msp/ap', 'ood/msp/fpr95',
            'ood/energy/auroc', 'ood/energy/ap'} <= set(ood)
    scalars, images = tensorboard_events(vis_data)
    for name, value in ood.items():
        assert name in scalars, name
        ((step, got), ) = scalars[name]
        assert step == val['step'] == 2
        assert got == pytest.approx(value, rel=1e-6), name
    assert {'val/ood_curves/val_roc.png', 'val/ood_curves/val_pr.png',
            'val/ood_heatmaps/0.png'} <= set(images)
    ((step, width), ) = images['val/ood_curves/val_roc.png']
    assert step == 2 and width > 100


def test_arguments_are_checked():
    from mmseg_ood.engine import OODTrackingHook
    with pytest.raises(ValueError, match='num_heatmaps'):
        OODTrackingHook(num_heatmaps=-1)
    with pytest.raises(TypeError, match='curves'):
        OODTrackingHook(curves='yes')


def test_ood_validation_reaches_mlflow(tmp_path, synthetic_root,
                                       monkeypatch):
    """The same through ``OODMLflowVisBackend``: mmengine's LoggerHook
    sends ``ood/msp/fpr@tpr0.95``, which MLflow refuses; the backend
    tracks it as ``ood/msp/fpr_tpr0.95``."""
    pytest.importorskip('mlflow', reason="the [tracking] extra")
    from mlflow.tracking import MlflowClient
    store = f'file://{tmp_path}/mlruns'
    work = tmp_path / 'work'
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
    backend = f"dict(type='OODMLflowVisBackend', tracking_uri={store!r})"
    run_tool('train.py', _config(tmp_path, synthetic_root, backend),
             '--work-dir', str(work), '--cfg-options', *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    (vis_data, ) = glob.glob(str(work / '*' / 'vis_data'))
    with open(osp.join(vis_data, 'scalars.json')) as f:
        logged = [json.loads(line) for line in f if line.strip()]
    (val, ) = [r for r in logged if 'ood/msp/auroc' in r]
    client = MlflowClient(tracking_uri=store)
    (run, ) = [r for e in client.search_experiments()
               for r in client.search_runs([e.experiment_id])]
    metrics = run.data.metrics
    assert metrics['ood/msp/fpr_tpr0.95'] == pytest.approx(
        val['ood/msp/fpr@tpr0.95'], rel=1e-6)
    for name in ('ood/msp/auroc', 'ood/energy/ap'):
        (m, ) = client.get_metric_history(run.info.run_id, name)
        assert m.step == 2 and m.value == pytest.approx(val[name], rel=1e-6)
