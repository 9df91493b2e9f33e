"""The registered OODMetric: agreement with the direct API, distributed."""
import gc
import os
import os.path as osp
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from mmseg_ood.errors import OODNotice
from mmseg_ood.evaluation import (ComponentAccumulator, OODMetric,
                                  PixelOODAccumulator)
from mmseg_ood.evaluation import (ECEMetric, OODSegmentMetric,
                                  OpenSetIoUMetric, RepresentationMetric)
from mmseg_ood.evaluation.metrics.sampler_padding import last_sample_is_padding
from mmseg_ood.formats.score_map_spill import SPILL_PREFIX, ScoreMapSpill

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
    pix = PixelOODAccumulator(name=name)
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


def test_spilled_maps_are_removed_after_evaluation_and_on_errors(tmp_path):
    metric = OODMetric(component_threshold='best_f1', spill_dir=str(tmp_path))
    metric.process({}, [make_sample(0)])
    spill = metric._spill.dir
    assert osp.dirname(spill) == str(tmp_path)
    assert len(os.listdir(spill)) == 1
    metric.evaluate(1)
    assert os.listdir(tmp_path) == []
    # a failing evaluation still removes them
    metric.process({}, [make_sample(0)])
    bad = make_sample(1)
    bad['ood_scores']['msp'][0, 0] = float('nan')
    with pytest.raises(ValueError, match="scorer 'msp'"):
        metric.process({}, [bad])
    metric.evaluate(2)
    assert os.listdir(tmp_path) == []
    # an abandoned metric (the loop raised before evaluate) on collection
    metric.process({}, [make_sample(0)])
    assert os.listdir(tmp_path) != []
    del metric
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_a_killed_runs_spill_is_removed_by_the_next(tmp_path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    host = socket.gethostname().replace('_', '-')
    stale = tmp_path / f'{SPILL_PREFIX}{host}_{dead.pid}_x1'
    stale.mkdir()
    (stale / 'maps.npy').write_bytes(b'0' * 10)
    live = tmp_path / f'{SPILL_PREFIX}{host}_{os.getpid()}_y'
    live.mkdir()
    other = tmp_path / 'results.json'
    other.write_text('{}')
    spill = ScoreMapSpill(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(
        [live.name, other.name, osp.basename(spill.dir)])
    spill.close()
    assert not osp.exists(spill.dir)


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
    with pytest.warns(OODNotice, match='no OOD'):
        out = m.evaluate(1)
    assert np.isnan(out['ood/msp/ap']) and np.isnan(out['ood/msp/auroc'])


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def padded_metrics():
    """The five accumulating metrics, on the samples of make_sample."""
    open_set = OpenSetIoUMetric(scorer='msp', thresholds=(None, 0.5))
    open_set.dataset_meta = dict(classes=('a', 'b', 'c'))
    return [OODMetric(component_threshold='best_f1',
                      component_preset='obstacle_track'),
            ECEMetric(), open_set,
            OODSegmentMetric(scorer='msp', thresholds=(0.3, 0.6)),
            RepresentationMetric()]


def with_predictions(sample):
    """make_sample plus 3-class logits and their argmax."""
    i = int(sample['img_path'].split('.')[0])
    logits = torch.from_numpy(np.random.default_rng(100 + i).normal(
        size=(3, 40, 50))).float()
    logits[1] += 2 * sample['ood_scores']['msp']
    sample['seg_logits'] = dict(data=logits)
    sample['pred_sem_seg'] = dict(data=logits.argmax(0)[None])
    return sample


def evaluate_all(metrics, indices, size):
    from mmseg_ood.evaluation import merge_across_ranks
    from mmseg_ood.evaluation.metrics.sampler_padding import (
                                                              PerSampleAccumulators)
    from mmseg_ood.scorers import StandardizedMaxLogit
    sml = PerSampleAccumulators()   # as the SML fit keeps its statistics
    for i in indices:
        sample = with_predictions(make_sample(i))
        for m in metrics:
            m.process({}, [sample])
        sml.start_sample()
        sml.get('sml', StandardizedMaxLogit).partial_fit(
            sample['seg_logits']['data'][None])
    out = {}
    for m in metrics:
        out.update(m.evaluate(size))
    fitted = merge_across_ranks(sml.finish(size))['sml']
    out.update({f'sml/{k}': float(v) for k, v in enumerate(
        np.r_[fitted.mean, fitted.std, fitted.stats.count])})
    return out


def _worker(rank, world, port, path, size):
    import torch.distributed as dist
    from mmengine.dataset import DefaultSampler
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world)
    import mmseg_ood  # noqa: F401
    # mmengine's own sampler: pads to a multiple of the ranks by repeating
    # the first samples
    indices = list(DefaultSampler(list(range(size)), shuffle=False))
    out = evaluate_all(padded_metrics(), indices, size)
    torch.save(dict(indices=indices, out=out), f'{path}.{rank}')
    dist.destroy_process_group()


@pytest.mark.parametrize('size', [NUM, NUM - 1])
def test_two_process_gloo_equals_one_process(tmp_path, size):
    """Bit-identical, also when the sampler pads (an odd count): the
    repeated sample is counted once."""
    ref = evaluate_all(padded_metrics(), range(size), size)
    path = str(tmp_path / 'out')
    mp.spawn(_worker, args=(2, _free_port(), path, size), nprocs=2,
             join=True)
    seen = []
    for rank in range(2):
        got = torch.load(f'{path}.{rank}', weights_only=False)
        seen += got['indices']
        assert set(got['out']) == set(ref)
        for k, v in ref.items():
            if k.startswith(('calibration/', 'sml/',
                             'representation/')):  # float64 sums
                assert got['out'][k] == pytest.approx(v, rel=1e-12), k
                continue
            assert got['out'][k] == v or (v != v and got['out'][k] != got[
                'out'][k]), (k, got['out'][k], v)   # integer counts: exact
    assert len(seen) == 2 * -(-size // 2)  # a repeat when size is odd
    assert ref['ood/msp/num_gt_components'] > 0
    assert ref['segments/msp@0.3/segments'] > 0


def test_padding_is_dropped_only_from_the_last_sample():
    assert not last_sample_is_padding(3, 5, rank=0, world_size=2)
    assert last_sample_is_padding(3, 5, rank=1, world_size=2)
    assert not last_sample_is_padding(3, 6, rank=1, world_size=2)
    assert not last_sample_is_padding(0, 5, rank=1, world_size=2)
    assert last_sample_is_padding(2, 4, rank=2, world_size=3)


# A job started in the background by a non-interactive shell inherits
# SIGINT ignored, and Python then installs no KeyboardInterrupt handler:
# the child restores it, so Ctrl-C is what it would be in a terminal.
SPILL_AND_WAIT = '''
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
from mmseg_ood.formats.score_map_spill import ScoreMapSpill
from mmseg_ood.tools.runner_args import exit_cleanly_on_sigterm
exit_cleanly_on_sigterm()
spill = ScoreMapSpill(sys.argv[1])
spill.append(0, np.zeros((4, 4), np.uint8), dict(msp=np.zeros((4, 4))))
print(spill.dir, flush=True)
time.sleep(60)
'''


@pytest.mark.parametrize('sig', ['SIGINT', 'SIGTERM'])
def test_spill_is_removed_on_interrupt_and_termination(tmp_path, sig):
    import signal
    proc = subprocess.Popen([sys.executable, '-c', SPILL_AND_WAIT,
                             str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    spill = proc.stdout.readline().strip()
    assert osp.isdir(spill)
    proc.send_signal(getattr(signal, sig))
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert os.listdir(tmp_path) == []


# the jobs it is made of ----------------------------------------------------


def _all_jobs(tmp_path, **kw):
    return OODMetric(component_threshold=dict(msp='best_f1', energy=-5.0),
                     component_preset='obstacle_track', per_image=True,
                     bootstrap=dict(samples=50, bins=64),
                     export=dict(out_dir=str(tmp_path), dataset_name='D'),
                     spill_dir=str(tmp_path), **kw)


def test_one_read_back_serves_components_bootstrap_and_export(
        tmp_path, monkeypatch):
    """The deferred components, the bootstrap and the export read the
    spill in one pass, each image once."""
    passes = []
    read = ScoreMapSpill.read_tagged

    def counted(self):
        passes.append(0)
        for record in read(self):
            passes[-1] += 1
            yield record

    monkeypatch.setattr(ScoreMapSpill, 'read_tagged', counted)
    metric = _all_jobs(tmp_path)
    for i in range(NUM):
        metric.process({}, [make_sample(i)])
    out = metric.evaluate(NUM)
    assert passes == [NUM]
    assert 'ood/msp/siou' in out and 'ood/msp/auroc_ci' in out
    assert len(list((tmp_path / 'anomaly_p' / 'msp' / 'D').iterdir())) == NUM


def test_each_job_adds_only_its_own_numbers(tmp_path):
    """Turning a job on adds its keys and changes no other number."""
    def run(**kw):
        metric = OODMetric(component_preset='obstacle_track',
                           spill_dir=str(tmp_path), **kw)
        for i in range(NUM):
            metric.process({}, [make_sample(i)])
        return metric.evaluate(NUM), metric

    base, _ = run(component_threshold=None)
    assert not any(k.endswith(('siou', '_ci', 'per_image_ap')) for k in base)
    fixed, m = run(component_threshold=-5.0)
    assert m.last_thresholds == dict(msp='fixed', energy='fixed')
    deferred, m = run(component_threshold='tpr:0.9')
    assert m.last_thresholds == dict(msp='tpr:0.9', energy='tpr:0.9')
    per_image, m = run(component_threshold=None, per_image=True)
    assert len(m.last_per_image.table()) == 2 * NUM  # image x scorer
    boot, m = run(component_threshold=None,
                  bootstrap=dict(samples=50, bins=64))
    assert m.last_bootstrap['images'] == NUM
    export, m = run(component_threshold=None,
                    export=dict(out_dir=str(tmp_path), dataset_name='D'))
    assert list(m.last_transforms) == ['msp', 'energy']
    for out, added in ((fixed, 'siou'), (deferred, 'siou'),
                       (per_image, 'per_image_ap'), (boot, 'auroc_ci'),
                       (export, None)):
        assert {k: out[k] for k in base} == base
        assert (added is None) == (set(out) == set(base))
        assert added is None or f'ood/msp/{added}' in out
    everything, _ = run(component_threshold=dict(msp='best_f1', energy=-5.0),
                        per_image=True, bootstrap=dict(samples=50, bins=64),
                        export=dict(out_dir=str(tmp_path), dataset_name='D'))
    alone, _ = run(component_threshold=dict(msp='best_f1', energy=-5.0))
    assert {k: everything[k] for k in alone} == alone


def test_a_job_is_built_only_where_the_arguments_ask(tmp_path):
    from mmseg_ood.evaluation.metrics.ood_metric_jobs import (
        ComponentThresholds)
    t = ComponentThresholds(dict(a='best_f1', b=0.5, c='tpr:0.8'),
                            'anomaly_track', 255)
    assert t.any_fixed() and t.any_deferred() and t.tpr_rates() == (0.8, )
    assert [t.describe(n) for n in 'abcd'] == ['best_f1', 'fixed',
                                               'tpr:0.8', 'none']
    assert (t.fixed('b'), t.fixed('a'), t.deferred('c')) == \
        (0.5, None, ('tpr', 0.8))
    assert not ComponentThresholds(None, 'anomaly_track', 255).any_fixed()
    assert not ComponentThresholds(0.5, 'anomaly_track', 255).any_deferred()
    # a fixed threshold alone spills nothing
    metric = OODMetric(component_threshold=0.5, spill_dir=str(tmp_path))
    metric.process({}, [make_sample(0)])
    assert metric._spill is None
    assert OODMetric(component_threshold=0.5, tpr_points=(0.9, )
                     ).tpr_points == (0.9, )
    assert OODMetric(component_threshold='tpr:0.8', tpr_points=(0.9, )
                     ).tpr_points == (0.9, 0.8)


def test_per_image_rows_carry_each_images_ground_truth_facts(tmp_path):
    """Every row of the per-image table (skipped images too) holds its
    image's ID / OOD / void pixels, OOD share and OOD components, counted
    here by hand with scipy's 8-connected labelling."""
    from scipy import ndimage
    metric = OODMetric(component_threshold=None, per_image=True,
                       spill_dir=str(tmp_path))
    samples = [make_sample(i) for i in range(NUM)]
    no_ood = make_sample(NUM)
    no_ood['gt_sem_seg']['data'][no_ood['gt_sem_seg']['data'] == 1] = 0
    no_ood['img_path'] = 'no_ood.png'
    # a second, diagonal-touching OOD blob joins the first (8-connected)
    samples[0]['gt_sem_seg']['data'][0, 15, 20 + 0] = 1
    samples[0]['gt_sem_seg']['data'][0, 25:27, 2:4] = 1
    for s in samples + [no_ood]:
        metric.process({}, [s])
    metric.evaluate(NUM + 1)
    rows = metric.last_per_image.table()
    by_image = {}
    for row in rows:
        by_image.setdefault(row['image'], []).append(row)
    assert len(rows) == 2 * NUM + 1
    for s in samples + [no_ood]:
        lab = s['gt_sem_seg']['data'][0].numpy()
        n_id, n_ood = int((lab == 0).sum()), int((lab == 1).sum())
        components = ndimage.label(lab == 1, structure=np.ones((3, 3)))[1]
        for row in by_image[s['img_path']]:
            assert row['id_pixels'] == n_id
            assert row['ood_pixels'] == n_ood
            assert row['void_pixels'] == int((lab == 255).sum())
            assert row['ood_share'] == pytest.approx(n_ood / (n_id + n_ood))
            assert row['ood_components'] == components
    assert by_image['0.png'][0]['ood_components'] == 2
    skipped, = by_image['no_ood.png']
    assert skipped['skipped'] == 'no OOD pixels'
    assert skipped['ood_share'] == 0 and skipped['ood_components'] == 0
