"""``ood_test --vis-backend tensorboard``: the scalars of results.json and
the figures, sent through mmengine's visualizer, read back from the event
file with TensorBoard's own reader."""
import glob
import json
import os.path as osp

import pytest

from conftest import ONE_THREAD_ENV, QUICK_OPTIONS, STREET_CONFIG, run_tool
from mmseg_ood.engine.tracking import add_vis_backends, result_scalars


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def test_tensorboard_scalars_equal_results_json(tmp_path, synthetic_root,
                                                trained_work_dir):
    pytest.importorskip('tensorboard', reason="the [tracking] extra")
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    run_tool('ood_test.py', STREET_CONFIG, _ckpt(trained_work_dir),
             '--work-dir', str(tmp_path), '--scorers', 'msp', 'energy',
             '--vis-backend', 'tensorboard', '--cfg-options', *QUICK_OPTIONS,
             env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    payload = json.loads((tmp_path / 'results.json').read_text())
    expected = result_scalars(payload)
    assert 'ood/synthetic_ood/energy/ap' in expected
    assert 'id/test_set/miou' in expected
    events = glob.glob(str(tmp_path / '**' / 'events.out.tfevents*'),
                       recursive=True)
    assert len(events) == 1, events
    acc = EventAccumulator(osp.dirname(events[0]),
                           size_guidance={'scalars': 0, 'images': 0})
    acc.Reload()
    tags = acc.Tags()
    for name, value in expected.items():
        assert name in tags['scalars'], name
        (event, ) = acc.Scalars(name)
        assert event.value == pytest.approx(value, rel=1e-6), name
    # the ROC / PR curves and the score distributions, as images
    figures = sorted(
        osp.splitext(osp.relpath(p, tmp_path))[0]
        for d in ('curves', 'distributions')
        for p in glob.glob(str(tmp_path / d / '*.png')))
    assert figures and sorted(tags['images']) == figures


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
