"""The registered OODMetric: agreement with the direct API, distributed."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from mmseg_ood.evaluation import (ComponentAccumulator, OODMetric,
                                  StreamingOODMetric)

NUM = 6


def make_sample(i):
    rng = np.random.default_rng(i)
    lab = np.zeros((40, 50), np.uint8)
    lab[5:15, 5 + i:20 + i] = 1
    lab[30:, :] = 255 if i % 2 else 0
    high = (lab == 1)
    high[20:28, 30:45] = True                  # an ID region scored high: FP
    msp = rng.random(lab.shape) * 0.3 + 0.6 * high
    energy = 20 * (rng.random(lab.shape) * 0.3 + 0.6 * high) - 15
    return dict(
        ood_scores=dict(msp=torch.from_numpy(msp).float(),
                        energy=torch.from_numpy(energy).float()),
        gt_sem_seg=dict(data=torch.from_numpy(lab)[None]),
        img_path=f'{i}.png')


def expected(name, threshold):
    pix = StreamingOODMetric(name=name)
    samples = [make_sample(i) for i in range(NUM)]
    for s in samples:
        pix.update(s['ood_scores'][name], s['gt_sem_seg']['data'][0])
    r = pix.compute()
    t = r['best_f1_threshold'] if threshold == 'best_f1' else threshold
    comp = ComponentAccumulator(t, preset='obstacle_track')
    for s in samples:
        comp.update(s['ood_scores'][name], s['gt_sem_seg']['data'][0])
    r.update(comp.compute())
    return r


@pytest.mark.parametrize('threshold', [
    'best_f1', dict(msp=0.5, energy=-5.0), dict(msp='best_f1', energy=-5.0)
])
def test_metric_equals_direct_api(threshold):
    metric = OODMetric(component_threshold=threshold,
                       component_preset='obstacle_track')
    for i in range(NUM):
        metric.process({}, [make_sample(i)])
    out = metric.evaluate(NUM)
    assert metric.last_results['msp']['num_gt_components'] > 0
    for name in ('msp', 'energy'):
        t = threshold if isinstance(threshold, str) else threshold[name]
        ref = expected(name, t)
        for k in ('auroc', 'ap', 'fpr95', 'siou', 'ppv', 'mean_f1'):
            assert out[f'ood/{name}/{k}'] == pytest.approx(ref[k]), (name, k)
        assert 0 < ref['ppv'] < 1 and 0 < ref['mean_f1'] < 1


def test_spilled_maps_are_removed_after_evaluation():
    metric = OODMetric(component_threshold='best_f1')
    metric.process({}, [make_sample(0)])
    spill = metric._spill_dir
    assert spill is not None and len(os.listdir(spill)) == 1
    metric.evaluate(1)
    assert not os.path.exists(spill)


def test_metric_errors_are_clear():
    m = OODMetric()
    s = make_sample(0)
    del s['ood_scores']
    with pytest.raises(KeyError, match='OODScoringHook'):
        m.process({}, [s])
    s = make_sample(0)
    s['ood_scores']['msp'][0, 0] = float('nan')
    with pytest.raises(ValueError, match="scorer 'msp'"):
        OODMetric().process({}, [s])
    with pytest.raises(KeyError, match=r"\['sml'\]"):
        OODMetric(scorers=['sml']).process({}, [make_sample(0)])
    with pytest.raises(ValueError, match='component_preset'):
        OODMetric(component_preset='laf')
    with pytest.raises(ValueError, match='component_threshold'):
        OODMetric(component_threshold='best_iou')


def test_non_finite_scores_on_void_pixels_are_ignored():
    clean, dirty = (OODMetric(component_preset='obstacle_track')
                    for _ in range(2))
    for i in (1, 3):  # odd samples have void rows
        s = make_sample(i)
        clean.process({}, [s])
        s = make_sample(i)
        s['ood_scores']['energy'][30:, :] = float('inf')
        dirty.process({}, [s])
    out = dirty.evaluate(2)
    assert out == clean.evaluate(2)
    assert out['ood/energy/num_pred_components'] > 0


def test_all_void_and_no_ood_images_give_nan_not_a_crash():
    m = OODMetric()
    s = make_sample(0)
    s['gt_sem_seg']['data'][:] = 0   # no OOD pixel anywhere
    m.process({}, [s])
    with pytest.warns(UserWarning, match='no OOD'):
        out = m.evaluate(1)
    assert np.isnan(out['ood/msp/ap']) and np.isnan(out['ood/msp/auroc'])


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world, port, path):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world)
    import mmseg_ood  # noqa: F401
    metric = OODMetric(component_threshold='best_f1',
                       component_preset='obstacle_track')
    for i in range(rank, NUM, world):    # a distributed sampler's split
        metric.process({}, [make_sample(i)])
    out = metric.evaluate(NUM)
    torch.save(out, f'{path}.{rank}')
    dist.destroy_process_group()


def test_two_process_gloo_equals_one_process(tmp_path):
    single = OODMetric(component_threshold='best_f1',
                       component_preset='obstacle_track')
    for i in range(NUM):
        single.process({}, [make_sample(i)])
    ref = single.evaluate(NUM)
    path = str(tmp_path / 'out')
    mp.spawn(_worker, args=(2, _free_port(), path), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(f'{path}.{rank}', weights_only=False)
        assert set(got) == set(ref)
        for k, v in ref.items():
            assert got[k] == pytest.approx(v, nan_ok=True), k
