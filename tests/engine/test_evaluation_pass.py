"""The evaluation-pass API, presets and configs from the package, the OOD
label pipeline, and SML fitted from the command line."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from conftest import QUICK_CFG, STREET_CONFIG


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


# --- the OOD label pipeline --------------------------------------------------
def types(pipeline):
    return [t['type'] if isinstance(t, dict) else types(t) for t in pipeline]


def test_load_annotations_becomes_the_ood_loader():
    from mmseg_ood.datasets import with_ood_annotations
    pipe = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(8, 8)),
            dict(type='LoadAnnotations', reduce_zero_label=False),
            dict(type='PackSegInputs')]
    out = with_ood_annotations(pipe)
    assert types(out) == ['LoadImageFromFileChecked', 'Resize',
                          'LoadOODAnnotations', 'PackSegInputs']
    assert out[2]['reduce_zero_label'] is False
    assert pipe[2]['type'] == 'LoadAnnotations'   # input untouched


def test_ood_loader_goes_before_packing_when_no_annotations_are_loaded():
    """The regression: it was appended after PackSegInputs, so the labels
    never reached the sample."""
    from mmseg_ood.datasets import with_ood_annotations
    pipe = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(8, 8)),
            dict(type='PackSegInputs')]
    assert types(with_ood_annotations(pipe)) == [
        'LoadImageFromFileChecked', 'Resize', 'LoadOODAnnotations',
        'PackSegInputs']
    tta = [dict(type='LoadImageFromFile'),
           dict(type='TestTimeAug', transforms=[
               [dict(type='Resize', scale_factor=1.0, keep_ratio=True)],
               [dict(type='PackSegInputs')]])]
    out = with_ood_annotations(tta)
    assert types(out[1]['transforms']) == [
        ['Resize'], ['LoadOODAnnotations'], ['PackSegInputs']]
    with pytest.raises(ValueError, match='PackSegInputs'):
        with_ood_annotations([dict(type='LoadImageFromFile')])


def test_pipeline_for_frames_without_labels():
    from mmseg_ood.datasets import without_annotations
    pipe = [dict(type='LoadImageFromFile', to_float32=True),
            dict(type='Resize', scale=(8, 8)),
            dict(type='LoadAnnotations', reduce_zero_label=False),
            dict(type='PackSegInputs')]
    out = without_annotations(pipe)
    assert types(out) == ['LoadImageFromFileChecked', 'Resize',
                          'PackSegInputs']
    assert out[0]['to_float32'] is True and pipe[0]['type'] == \
        'LoadImageFromFile'
    tta = [dict(type='LoadImageFromFile'),
           dict(type='TestTimeAug', transforms=[
               [dict(type='Resize', scale_factor=1.0, keep_ratio=True)],
               [dict(type='LoadOODAnnotations')],
               [dict(type='PackSegInputs')]])]
    assert types(without_annotations(tta)[1]['transforms']) == [
        ['Resize'], ['PackSegInputs']]


def test_labels_reach_the_sample_without_load_annotations(synthetic_root):
    """End to end through mmseg's own dataset and transforms."""
    import mmseg_ood  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    from mmseg_ood.datasets import load_dataset_preset
    from mmseg_ood.datasets import with_ood_annotations
    init_default_scope('mmseg')
    cfg = dict(load_dataset_preset('synthetic_ood').dataset,
               data_root=osp.join(synthetic_root, 'street', 'ood'),
               pipeline=with_ood_annotations(
                   [dict(type='LoadImageFromFile'),
                    dict(type='PackSegInputs')]))
    sample = DATASETS.build(cfg)[0]['data_samples']
    label = sample.gt_sem_seg.data.numpy()[0]
    raw = cv2.imread(osp.join(synthetic_root, 'street', 'ood',
                              'labels_masks', '0000_labels_semantic.png'),
                     cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(label, raw)
    assert set(np.unique(label)) <= {0, 1, 255} and (label == 1).any()


# --- presets and configs shipped with the package ---------------------------
def test_presets_and_configs_resolve_from_the_package():
    from mmseg_ood.datasets import (available_dataset_presets,
                                    load_dataset_preset)
    from mmseg_ood.utils import config_root, load_config, resolve_config_path
    assert {'synthetic_ood', 'road_anomaly21', 'fs_static'} <= set(
        available_dataset_presets())
    p = load_dataset_preset('road_obstacle21')
    assert (p.component_preset, p.smiyc_name) == ('obstacle_track',
                                                  'ObstacleTrack-all')
    assert p.dataset['type'] == 'RoadObstacle21Dataset'
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    rel = osp.relpath(STREET_CONFIG, osp.join(repo, 'configs'))
    path = resolve_config_path(f'mmseg_ood::{rel}')
    assert osp.samefile(path, STREET_CONFIG)
    assert osp.isdir(osp.join(config_root(), '_base_', 'datasets', 'ood'))
    cfg = load_config(f'mmseg_ood::{rel}')
    assert cfg.model.decode_head.num_classes == 6
    with pytest.raises(FileNotFoundError, match='mmseg_ood::nope.py'):
        resolve_config_path('mmseg_ood::nope.py')
    with pytest.raises(FileNotFoundError, match='mmseg_ood::'):
        load_config('no/such/config.py')


def test_preset_file_fields_are_checked(tmp_path):
    from mmseg_ood.datasets import load_dataset_preset
    bad = tmp_path / 'bad.py'
    bad.write_text("ood_dataset = dict(type='SyntheticOODDataset', "
                   "data_root='x')\ncomponent_preset = 'obstacle'\n")
    with pytest.raises(ValueError, match='obstacle_track'):
        load_dataset_preset(str(bad))
    empty = tmp_path / 'empty.py'
    empty.write_text('x = 1\n')
    with pytest.raises(ValueError, match='ood_dataset'):
        load_dataset_preset(str(empty))
    own = tmp_path / 'mine.py'
    own.write_text("ood_dataset = dict(type='SyntheticOODDataset', "
                   "data_root='x')\n")
    p = load_dataset_preset(str(own))
    assert (p.name, p.component_preset, p.smiyc_name) == (
        'mine', 'anomaly_track', 'mine')


# --- EvaluationSession -------------------------------------------------------
@pytest.fixture(scope='module')
def session(tmp_path_factory, synthetic_root, trained_work_dir):
    from mmseg_ood.engine import EvaluationSession
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('MMSEG_OOD_DATA', synthetic_root)
        s = EvaluationSession(STREET_CONFIG, _ckpt(trained_work_dir),
                              str(tmp_path_factory.mktemp('session')),
                              cfg_options=dict(QUICK_CFG))
        yield s
        s.close()


def test_session_runs_passes_on_one_model(session, synthetic_root):
    from mmseg_ood.datasets import load_dataset_preset
    from mmseg_ood.evaluation import OODMetric
    model = session.model
    hooks = len(session.runner.hooks)
    preset = load_dataset_preset('synthetic_ood')
    ood = session.run_pass(
        preset.dataset, name='ood', scorers=['msp', 'energy'],
        ood_labels=True, metrics=[dict(type='OODMetric',
                                       component_threshold=None)])
    metric = ood.metric(OODMetric)
    assert ood.metric('OODMetric') is metric
    assert set(metric.last_results) == {'msp', 'energy'}
    assert ood.metrics['ood/energy/auroc'] == metric.last_results[
        'energy']['auroc']
    # the same (loaded) model serves the next pass; pass hooks are gone
    assert session.model is model
    assert len(session.runner.hooks) == hooks
    test = session.run_pass(name='id',
                            metrics=[dict(type='IoUMetric',
                                          iou_metrics=['mIoU'])])
    assert 0 <= test.metrics['mIoU'] <= 100
    with pytest.raises(KeyError, match='IoUMetric'):
        test.metric('OODMetric')


def test_closed_session_says_so(trained_work_dir, tmp_path):
    from mmseg_ood.engine import EvaluationSession
    with EvaluationSession(STREET_CONFIG, _ckpt(trained_work_dir),
                           str(tmp_path)) as s:
        pass
    with pytest.raises(RuntimeError, match='is closed'):
        s.run_pass(metrics=[])


def test_session_loads_the_checkpoint_weights(session, trained_work_dir):
    from mmseg_ood.utils import checkpoint_state_dict, load_checkpoint_file
    state = checkpoint_state_dict(load_checkpoint_file(
        _ckpt(trained_work_dir)))
    own = session.model.state_dict()
    for k in ('decode_head.conv_seg.weight', 'backbone.stem.0.weight'):
        torch.testing.assert_close(own[k], state[k])


def test_unknown_metric_argument_fails_before_the_pass(session):
    n = len(session.runner.hooks)
    with pytest.raises(TypeError, match=r"'bitz' \(did you mean 'bits'\?\)"):
        session.run_pass(metrics=[dict(type='OODMetric', bitz=8)])
    with pytest.raises(ValueError, match="unknown scorer 'msq'"):
        session.run_pass(scorers=['msq'], metrics=[])
    with pytest.raises(TypeError, match=r"'nun' \(did you mean 'num'\?\); "
                       'accepted: out_dir'):
        session.run_pass(scorers=['msp'], metrics=[],
                         hooks=[dict(type='OODVisualizationHook',
                                     out_dir='x', nun=2)])
    assert len(session.runner.hooks) == n   # nothing left behind


# --- SML from the command line -----------------------------------------------
def test_sml_flags_reach_the_evaluation(monkeypatch):
    """The command line's SML flags, as ood_test receives them."""
    import mmseg_ood.apis
    from mmseg_ood.tools import ood_test as tool
    seen = {}
    monkeypatch.setattr(mmseg_ood.apis, 'ood_test',
                        lambda *a, **kw: seen.update(vars(a[2])))
    monkeypatch.setenv('LOCAL_RANK', '0')  # restored afterwards
    tool.main(['cfg.py', 'ckpt.pth', '--scorers', 'msp', 'sml',
               '--sml-fit-on', 'val', '--sml-stats', 's.json'])
    assert seen['scorers'] == ['msp', 'sml']
    assert (seen['sml_fit_on'], seen['sml_stats']) == ('val', 's.json')
    with pytest.raises(SystemExit):
        tool.parse_args(['cfg.py', 'ckpt.pth', '--sml-fit-on', 'test'])


def test_sml_fitted_cached_and_reused(tmp_path, synthetic_root,
                                      trained_work_dir, monkeypatch):
    """`sml` is fitted on the config's own val set, its statistics cached
    with what they were fitted on and reused; they equal those of the
    head's logits, computed apart."""
    from mmseg.apis import inference_model, init_model
    from mmseg_ood.apis import ood_test
    from mmseg_ood.models import final_decode_head
    from mmseg_ood.scorers import StandardizedMaxLogit
    from mmseg_ood.utils import safe_checkpoint_loading
    ckpt = _ckpt(trained_work_dir)
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    ood_test(STREET_CONFIG, ckpt, str(tmp_path), scorers=['msp', 'sml'],
             sml_fit_on='val', id_eval=False, cfg_options=dict(QUICK_CFG))
    stats = tmp_path / 'sml_statistics_val.json'
    saved = json.load(open(stats))
    assert saved['meta']['split'] == 'val'
    assert len(saved['meta']['checkpoint_sha256']) == 64
    res = json.load(open(tmp_path / 'results.json'))['results']
    assert 0 <= res['synthetic_ood']['sml']['auroc'] <= 1

    # a second run reuses the file (fitting is forbidden now)
    def no_fit(*args, **kwargs):
        raise AssertionError('SML was fitted again')
    monkeypatch.setattr('mmseg_ood.apis.fit_on_id.fit_on_id', no_fit)
    again = ood_test(STREET_CONFIG, ckpt, str(tmp_path),
                     scorers=['msp', 'sml'], sml_fit_on='val', id_eval=False,
                     cfg_options=dict(QUICK_CFG))
    assert again['results']['synthetic_ood']['sml'] == pytest.approx(
        res['synthetic_ood']['sml'], nan_ok=True)

    # independent: the head's logits over the val images, plain mmseg
    with safe_checkpoint_loading():
        model = init_model(STREET_CONFIG, ckpt, device='cpu')
    captured = []
    final_decode_head(model).conv_seg.register_forward_hook(
        lambda m, a, o: captured.append(o.detach().clone()))
    val = osp.join(synthetic_root, 'street', 'images', 'val')
    for name in sorted(__import__('os').listdir(val)):
        inference_model(model, osp.join(val, name))
    ref = StandardizedMaxLogit().fit(captured)
    sml = StandardizedMaxLogit(stats_file=str(stats))
    np.testing.assert_allclose(sml.mean, ref.mean, rtol=1e-6)
    np.testing.assert_allclose(sml.std, ref.std, rtol=1e-5)

    # a broken statistics file is named, before any pass
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(dict(count=[1, 2], mean=[0.0], m2=[0, 0])))
    with pytest.raises(ValueError, match=str(bad)):
        ood_test(STREET_CONFIG, ckpt, str(tmp_path / 'bad'),
                 scorers=['sml'], sml_stats=str(bad), id_eval=False)
    with pytest.raises(ValueError, match='`sml` is not among the scorers'):
        ood_test(STREET_CONFIG, ckpt, str(tmp_path / 'bad'),
                 scorers=['msp'], sml_stats=str(stats), id_eval=False)
