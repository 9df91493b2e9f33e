"""The SMIYC export's float16 transform and the export hook.

End to end (ood_test's files read back and evaluated against its own
numbers) is in ``test_ood_test_tool.py``; one process vs two in
``test_distributed.py``."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmseg_ood.engine import SMIYCExportHook
from mmseg_ood.engine.hooks.smiyc_export_hook import transform_file
from mmseg_ood.evaluation import PixelOODAccumulator, pixel_ood_metrics
from mmseg_ood.evaluation.accumulators.score_transform import (
                                                               FLOAT16_UNIT_VALUES,
                                                               Float16RankTransform,
                                                               float16_knots)


def _fit(maps):
    hist = PixelOODAccumulator()
    for m in maps:
        Float16RankTransform.observe(hist, m)
    return Float16RankTransform.fit(hist)


def test_float16_grid():
    g = FLOAT16_UNIT_VALUES
    assert g.dtype == np.float16 and g.size == 15361
    assert g[0] == 0 and g[-1] == 1
    assert (np.diff(g.astype(np.float64)) > 0).all()
    # every float16 in [0, 1] is on the grid
    every = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    inside = every[np.isfinite(every) & (every >= 0) & (every <= 1)]
    assert np.unique(inside.astype(np.float64)).size == g.size


def test_hand_worked_codes():
    t = Float16RankTransform([1.0, 2.0, 3.0])
    s = np.array([-np.inf, 0.5, 1.0, 1.5, 2.0, 2.999, 3.0, 10.0, np.inf],
                 np.float32)
    assert t.codes(s).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3]
    # K = 3 codes spread over the 15361 values: indices 0, 5120, 10240, 15360
    expect = FLOAT16_UNIT_VALUES[[0, 0, 5120, 5120, 10240, 10240, 15360,
                                  15360, 15360]]
    np.testing.assert_array_equal(t(s), expect)
    assert t(s).dtype == np.float16 and t(s)[-1] == 1.0 and t(s)[0] == 0.0


def test_no_knots_maps_everything_to_zero():
    t = _fit([np.full((4, 4), 3.0, np.float32)])
    assert t.knots.size == 0
    np.testing.assert_array_equal(t(np.array([1.0, 3.0, 9.0])), 0)


@pytest.mark.parametrize('max_sub', [0, 1 << 16])
@pytest.mark.parametrize('scale', [1e-4, 1.0, 1e4])
def test_table_lookup_equals_search(scale, max_sub, monkeypatch):
    """The lookup tables (bins, and sub-tables of the bins with a knot
    inside, or a search there) and exact search agree, also for knots
    strictly inside a table bin, scores below / above every knot, negative
    and positive scores and infinities."""
    import mmseg_ood.evaluation.accumulators.score_transform as module
    monkeypatch.setattr(module, '_MAX_SUB', max_sub)
    rng = np.random.default_rng(0)
    knots = np.unique(np.r_[rng.normal(size=3000) * scale,
                            np.float32(1.5) * scale,
                            np.nextafter(np.float32(1.5 * scale),
                                         np.float32(10 * scale))]
                      .astype(np.float32))
    t = Float16RankTransform(knots)
    s = np.r_[rng.normal(size=200_000) * scale * 1.5, knots,
              np.nextafter(knots, np.float32(-np.inf)), -np.inf, np.inf,
              0.0, -0.0].astype(np.float32)
    np.testing.assert_array_equal(
        t.codes(s), np.searchsorted(knots, s, side='right'))


def test_widest_span():
    knots = np.array([-1e30, -1e-30, 1e-30, 1e30], np.float32)
    t = Float16RankTransform(knots)
    s = np.array([-np.inf, -1e31, -1.0, 0.0, 1.0, 1e31], np.float32)
    assert t.codes(s).tolist() == [0, 0, 1, 2, 3, 4]


def test_monotone_and_ties_stay_ties():
    rng = np.random.default_rng(1)
    s = np.sort(np.r_[rng.normal(size=300_000), np.full(5000, 0.25)]
                .astype(np.float32))
    v = _fit([s])(s).astype(np.float64)
    assert (np.diff(v) >= 0).all()
    tied = v[s == np.float32(0.25)]
    assert np.unique(tied).size == 1
    assert v.min() >= 0 and v.max() <= 1


def test_few_distinct_values_keep_their_ranking_exactly():
    """Fewer distinct scores than float16 values (and at least a histogram
    bin apart): every one its own value, so every metric computed from the
    float16 maps is the scores' own."""
    rng = np.random.default_rng(2)
    levels = np.r_[-2.0 ** np.linspace(-20, 20, 4500),
                   2.0 ** np.linspace(-20, 20, 4500)].astype(np.float32)
    s = levels[rng.integers(0, levels.size, size=(60, 500))]
    y = (rng.random(s.shape) < 0.1).astype(np.uint8)
    t = _fit([s])
    v = t(s)
    assert np.unique(v).size == np.unique(s).size
    a, b = pixel_ood_metrics(s, y), pixel_ood_metrics(v.astype(np.float32), y)
    for k in ('auroc', 'ap', 'fpr95', 'best_f1'):
        assert a[k] == b[k], k


def test_group_sizes():
    """Each float16 value holds at most about 2 N / 15361 pixels of a
    continuous distribution (up to 3: a histogram bin is not split), and
    among the top 1 % of the scores at most a third of that (the
    upper-tail half of the values); with ``tail_share=0`` about N / 15361
    (up to 2.5)."""
    rng = np.random.default_rng(3)
    s = rng.standard_cauchy(size=2_000_000).astype(np.float32)
    t = _fit([s])
    counts = np.bincount(t.codes(s))
    assert t.knots.size > 12000  # the top codes are finer than a pixel
    assert counts.max() <= 3 * s.size / 15361
    top = t.codes(s[s >= np.quantile(s, 0.99)])
    assert np.bincount(top)[top.min():].max() <= 0.4 * s.size / 15361
    hist = PixelOODAccumulator()
    Float16RankTransform.observe(hist, s)
    values, pos, neg = hist.counts_by_value()
    flat = Float16RankTransform(float16_knots(values, pos + neg,
                                              tail_share=0.0))
    counts = np.bincount(flat.codes(s))
    assert counts.max() <= 2.5 * s.size / 15361


def test_knots_never_split_a_value():
    values = np.array([0.0, 1.0, 2.0, 3.0], np.float32)
    counts = np.array([1, 100, 1, 1])
    knots = float16_knots(values, counts, codes=3)
    assert set(knots.tolist()) <= set(values.tolist())
    assert knots.size < 3 and (np.diff(knots) > 0).all()


def test_narrow_scores_lose_ranking_in_float16_but_not_through_transform():
    """A normalized-energy-like score between -1.02 and -1.00: cast to
    float16 it keeps a handful of values and AP drops; through the
    transform the metrics equal the tool's own (the streaming histogram)
    within 1e-3."""
    rng = np.random.default_rng(4)
    maps, labels = [], []
    for _ in range(6):
        y = (rng.random((128, 256)) < 0.05).astype(np.uint8)
        y[:8] = 255
        maps.append((-1.01 + 0.002 * rng.normal(size=y.shape) +
                     0.004 * (y == 1)).astype(np.float32))
        labels.append(y)
    tool = PixelOODAccumulator()
    for m, y in zip(maps, labels):
        tool.update(m, y)
    tool = tool.compute()
    t = _fit(maps)
    flat_y = np.concatenate([y.ravel() for y in labels])
    cast = pixel_ood_metrics(np.concatenate(
        [m.astype(np.float16).astype(np.float32).ravel() for m in maps]),
        flat_y)
    files = pixel_ood_metrics(np.concatenate(
        [t(m).astype(np.float32).ravel() for m in maps]), flat_y)
    assert abs(cast['ap'] - tool['ap']) > 0.02
    for k in ('auroc', 'ap', 'fpr95'):
        assert abs(files[k] - tool[k]) <= 1e-3, k


def test_coarse_pixels_of_a_refined_bin_never_tie_with_a_lower_bin():
    """A bin heavy in one image only (exact values there) also holds pixels
    of other images, counted coarsely: its lower edge is a knot, so those
    pixels stay above every lower bin (the files then rank them as the
    scores do)."""
    rng = np.random.default_rng(8)
    maps, labels = [], []
    first = np.full(10_000, 0.99, np.float32)
    first[:5000] = 1.0003          # heavy in this image: counted exactly
    maps.append(first)
    labels.append(np.zeros(10_000, np.uint8))
    for _ in range(60):
        m = (rng.normal(size=10_000) * 0.01 + 0.98).astype(np.float32)
        y = (rng.random(10_000) < 0.008).astype(np.uint8)
        m[y == 1] = 1.0001         # same bin, never heavy: coarse
        maps.append(m)
        labels.append(y)
    hist = PixelOODAccumulator()
    for m, y in zip(maps, labels):
        hist.update(m, y)
    t = Float16RankTransform.fit(hist)
    assert np.float32(1.0001) >= hist.refined_edges().max()
    assert t.codes(np.float32([1.0001]))[0] > t.codes(
        np.float32([0.99]))[0]
    s, y = np.concatenate(maps), np.concatenate(labels)
    exact = pixel_ood_metrics(s, y)
    files = pixel_ood_metrics(t(s).astype(np.float32), y)
    assert abs(files['ap'] - exact['ap']) <= 1e-3


def test_json_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(5)
    t = _fit([rng.normal(size=50_000).astype(np.float32) * 7])
    path = tmp_path / 't.json'
    path.write_text(json.dumps(t.to_dict(scorer='energy')))
    back = Float16RankTransform.from_dict(json.loads(path.read_text()),
                                          str(path))
    np.testing.assert_array_equal(back.knots, t.knots)
    s = rng.normal(size=10_000).astype(np.float32) * 7
    np.testing.assert_array_equal(back(s), t(s))
    with pytest.raises(ValueError, match='t.json: not a Float16Rank'):
        Float16RankTransform.from_dict({'format': 'x'}, 't.json')
    with pytest.raises(ValueError, match='version 9'):
        Float16RankTransform.from_dict(dict(t.to_dict(), version=9))
    with pytest.raises(ValueError, match='strictly increasing'):
        Float16RankTransform.from_dict(dict(t.to_dict(), knots=[2, 1]))
    with pytest.raises(ValueError, match='finite'):
        Float16RankTransform([0.0, np.inf])
    with pytest.raises(ValueError, match='at most 15360'):
        Float16RankTransform(np.arange(15361, dtype=np.float32))


# the hook ---------------------------------------------------------------


def _sample(path, **maps):
    return SimpleNamespace(img_path=path, ood_scores={
        n: torch.from_numpy(m) for n, m in maps.items()},
        get=lambda k, d=None, m=maps: {n: torch.from_numpy(v)
                                       for n, v in m.items()}
        if k == 'ood_scores' else d)


def _runner(n):
    return SimpleNamespace(test_dataloader=SimpleNamespace(
        dataset=list(range(n))))


def _run_hook(hook, frames):
    runner = _runner(len(frames))
    hook.before_test_epoch(runner)
    for i, (path, maps) in enumerate(frames):
        hook.after_test_iter(runner, i, outputs=[_sample(path, **maps)])
    hook.after_test_epoch(runner, {})


def _read(path):
    import h5py
    with h5py.File(path, 'r') as f:
        return f['value'][:]


def test_hook_writes_transformed_frames_and_the_transform(tmp_path):
    rng = np.random.default_rng(6)
    frames = [(f'/x/{i:04d}_leftImg8bit.png',
               dict(energy=(rng.normal(size=(20, 30)) * 0.01 - 40)
                    .astype(np.float32)))
              for i in range(3)]
    hook = SMIYCExportHook(out_dir=str(tmp_path), dataset_name='Set-all',
                           method_prefix='m_', spill_dir=str(tmp_path))
    _run_hook(hook, frames)
    t = hook.transforms['energy']
    record = json.load(open(transform_file(str(tmp_path), 'm_energy',
                                           'Set-all')))
    assert record['dataset'] == 'Set-all' and record['scorer'] == 'energy'
    assert record['num_pixels'] == 3 * 20 * 30
    back = Float16RankTransform.from_dict(record)
    for path, maps in frames:
        fid = path.split('/')[-1][:4]
        value = _read(tmp_path / 'anomaly_p' / 'm_energy' / 'Set-all' /
                      f'{fid}.hdf5')
        assert value.dtype == np.float16 and value.shape == (20, 30)
        np.testing.assert_array_equal(value, back(maps['energy']))
    # -40 +- 0.01 cast to float16 is a handful of values; through the
    # transform nearly every distinct float32 score keeps its own (all but
    # those the histogram counted coarsely, in frames where their bin was
    # not heavy)
    raw = np.concatenate([f[1]['energy'].ravel() for f in frames])
    assert np.unique(raw.astype(np.float16)).size < 10
    assert np.unique(t(raw)).size >= 0.99 * np.unique(raw).size > 1000
    # the spill is gone
    assert not list(tmp_path.glob('mmseg_ood_spill_*'))


def test_hook_raw_cast_and_errors(tmp_path):
    m = np.array([[0.5, 1e6]], np.float32)
    hook = SMIYCExportHook(out_dir=str(tmp_path), dataset_name='D',
                           transform='none')
    with pytest.raises(ValueError, match="outside the float16 range.*"
                       "transform='rank'"):
        _run_hook(hook, [('/a/f.png', dict(energy=m))])
    _run_hook(hook, [('/a/f.png', dict(energy=m[:, :1]))])
    assert _read(tmp_path / 'anomaly_p' / 'energy' / 'D' / 'f.hdf5') == 0.5
    nan = np.array([[np.nan, 1.0]], np.float32)
    with pytest.raises(ValueError, match="'energy'.*/a/g.png has NaN"):
        _run_hook(SMIYCExportHook(out_dir=str(tmp_path), dataset_name='D'),
                  [('/a/g.png', dict(energy=nan))])
    with pytest.raises(ValueError, match="`transform` must be one of"):
        SMIYCExportHook(out_dir='x', dataset_name='D', transform='rankk')


def test_ood_metric_exports_the_frames_it_evaluates(tmp_path):
    """``OODMetric(export=...)``: every frame's map through the transform
    fitted from the metric's own pooled histogram, and its record; the
    metric's numbers are unchanged by exporting."""
    from mmseg_ood.evaluation import OODMetric
    rng = np.random.default_rng(7)
    samples = []
    for i in range(3):
        y = (rng.random((30, 40)) < 0.1).astype(np.uint8)
        y[:2] = 255
        s = (rng.normal(size=y.shape) * 0.01 - 40 + 0.02 * (y == 1))
        y[10:20, 10:20] = 1  # a component in every image
        samples.append(dict(img_path=f'/d/{i:02d}_leftImg8bit.png',
                            ood_scores=dict(energy=s.astype(np.float32),
                                            msp=-s.astype(np.float32)),
                            gt_sem_seg=dict(data=y[None])))
    # components at the best-F1 threshold and at a fixed one
    rules = dict(energy='best_f1', msp=40.0)
    plain = OODMetric(component_threshold=rules)
    plain.process(None, samples)
    expected = plain.evaluate(3)
    assert 'ood/msp/siou' in expected and 'ood/energy/siou' in expected
    metric = OODMetric(component_threshold=rules,
                       export=dict(out_dir=str(tmp_path),
                                   dataset_name='Set-all',
                                   method_prefix='m_'))
    metric.process(None, samples)
    # (NaN where undefined: compared as JSON text)
    assert json.dumps(metric.evaluate(3), sort_keys=True) == json.dumps(
        expected, sort_keys=True)
    t = metric.last_transforms['energy']
    record = json.load(open(transform_file(str(tmp_path), 'm_energy',
                                           'Set-all')))
    assert record['num_pixels'] == 3 * 28 * 40   # non-void pixels
    np.testing.assert_array_equal(
        Float16RankTransform.from_dict(record).knots, t.knots)
    for i, sample in enumerate(samples):
        value = _read(tmp_path / 'anomaly_p' / 'm_energy' / 'Set-all' /
                      f'{i:02d}.hdf5')
        np.testing.assert_array_equal(
            value, t(sample['ood_scores']['energy']))
    # NaN, also on a void pixel (which the metric alone leaves out), cannot
    # be ranked into a file
    bad = dict(samples[0], ood_scores=dict(
        energy=np.where(samples[0]['gt_sem_seg']['data'][0] == 255, np.nan,
                        samples[0]['ood_scores']['energy'])))
    OODMetric().process(None, [bad])
    with pytest.raises(ValueError, match="'energy': /d/00_leftImg8bit.png "
                       'has NaN scores'):
        metric.process(None, [bad])
    with pytest.raises(ValueError, match="needs a non-empty str "
                       "'dataset_name'"):
        OODMetric(export=dict(out_dir='x'))
    with pytest.raises(ValueError, match=r"unknown keys \['outdir'\]"):
        OODMetric(export=dict(outdir='x', dataset_name='D'))
    with pytest.raises(ValueError, match='gzip level 0-9'):
        OODMetric(export=dict(out_dir='x', dataset_name='D',
                              compression=11))


# the one pipeline -------------------------------------------------------


def test_smiyc_export_validates_its_options():
    from mmseg_ood.formats import SMIYCExport
    with pytest.raises(ValueError, match='`out_dir` must be a non-empty'):
        SMIYCExport('', 'D')
    with pytest.raises(ValueError, match='`dataset_name` must be a non-'):
        SMIYCExport('x', None)
    with pytest.raises(TypeError, match='`method_prefix` must be a str'):
        SMIYCExport('x', 'D', method_prefix=1)
    with pytest.raises(ValueError, match='`transform` must be one of'):
        SMIYCExport('x', 'D', transform='raw')
    with pytest.raises(ValueError, match='gzip level 0-9'):
        SMIYCExport('x', 'D', compression=True)
    # the metric's dict form: its own messages, its defaults
    assert SMIYCExport.from_options(None) is None
    with pytest.raises(TypeError, match='`export` must be a dict'):
        SMIYCExport.from_options('x')
    with pytest.raises(ValueError, match=r"unknown keys \['transform'\]; it "
                       'takes out_dir, dataset_name, method_prefix, '
                       'compression'):
        SMIYCExport.from_options(dict(out_dir='x', dataset_name='D',
                                      transform='none'))
    with pytest.raises(ValueError, match="needs a non-empty str 'out_dir'"):
        SMIYCExport.from_options(dict(out_dir='', dataset_name='D'))
    with pytest.raises(TypeError, match='`export` method_prefix must be'):
        SMIYCExport.from_options(dict(out_dir='x', dataset_name='D',
                                      method_prefix=None))
    e = SMIYCExport.from_options(dict(out_dir='x', dataset_name='D'))
    assert e.transform == 'rank' and e.needs_fit
    assert e.options() == dict(out_dir='x', dataset_name='D',
                               method_prefix='', compression=None)


@pytest.mark.parametrize('compression', [None, 4])
def test_smiyc_export_fit_and_write(tmp_path, compression):
    """check_map -> fit (recorded) -> write: the frame is the fitted
    transform of the map, in the layout of frame_file."""
    from mmseg_ood.formats import SMIYCExport
    from mmseg_ood.formats.smiyc import frame_file
    rng = np.random.default_rng(9)
    maps = [(rng.normal(size=(12, 16)) * 3).astype(np.float32)
            for _ in range(2)]
    export = SMIYCExport(str(tmp_path), 'Set-all', method_prefix='p_',
                         compression=compression)
    hist = PixelOODAccumulator(name='energy')
    for m in maps:
        export.check_map('energy', m, 'f.png')
        Float16RankTransform.observe(hist, m)
    fitted = export.fit(dict(energy=hist), 'the test maps')
    assert fitted is export.transforms and list(fitted) == ['energy']
    record = json.load(open(transform_file(str(tmp_path), 'p_energy',
                                           'Set-all')))
    assert record['fitted_on'] == 'the test maps'
    assert record['num_pixels'] == 2 * 12 * 16
    for i, m in enumerate(maps):
        export.write('energy', f'/a/{i}_leftImg8bit.png', m)
        path = frame_file(str(tmp_path), 'p_energy', 'Set-all',
                          f'/a/{i}_leftImg8bit.png')
        assert path == export.frame_path('energy', f'/b/{i}.png')
        np.testing.assert_array_equal(_read(path), fitted['energy'](m))
    with pytest.raises(ValueError, match="'energy': f.png has NaN scores"):
        export.check_map('energy', np.float32([np.nan]), 'f.png')
    raw = SMIYCExport(str(tmp_path), 'D', transform='none')
    assert not raw.needs_fit
    raw.write('msp', '/a/g.png', np.float32([[0.25, -3.0]]))
    np.testing.assert_array_equal(
        _read(tmp_path / 'anomaly_p' / 'msp' / 'D' / 'g.hdf5'),
        np.float16([[0.25, -3.0]]))
    with pytest.raises(ValueError, match='outside the float16 range'):
        raw.write('msp', '/a/g.png', np.float32([7e4]))


def test_the_hook_and_the_metric_share_the_pipeline(tmp_path):
    """Both build a SMIYCExport of their arguments; the hook's options read
    from it."""
    from mmseg_ood.evaluation import OODMetric
    from mmseg_ood.formats import SMIYCExport
    hook = SMIYCExportHook(out_dir=str(tmp_path), dataset_name='D',
                           method_prefix='m_', transform='none',
                           compression=3)
    assert isinstance(hook.export, SMIYCExport)
    assert (hook.out_dir, hook.dataset_name, hook.method_prefix,
            hook.transform, hook.compression) == (str(tmp_path), 'D', 'm_',
                                                   'none', 3)
    metric = OODMetric(export=dict(out_dir=str(tmp_path), dataset_name='D'))
    assert metric.export == dict(out_dir=str(tmp_path), dataset_name='D',
                                 method_prefix='', compression=None)


def test_the_hook_leaves_a_padding_repeat_out(tmp_path, monkeypatch):
    """Two ranks, an odd dataset: rank 1's last frame is a repeat of frame
    0; its pixels are not fitted on and its file is not rewritten."""
    import mmseg_ood.evaluation.metrics.sampler_padding as padding
    monkeypatch.setattr(padding, 'get_dist_info', lambda: (1, 2))
    rng = np.random.default_rng(10)
    frames = [(f'/x/{i}.png', dict(energy=rng.normal(size=(6, 8))
                                   .astype(np.float32))) for i in range(2)]
    hook = SMIYCExportHook(out_dir=str(tmp_path), dataset_name='D',
                           spill_dir=str(tmp_path))
    runner = _runner(3)   # rank 1 of 2 sees positions 1 and 3 (a repeat)
    hook.before_test_epoch(runner)
    for i, (path, maps) in enumerate(frames):
        hook.after_test_iter(runner, i, outputs=[_sample(path, **maps)])
    hook.after_test_epoch(runner, {})
    record = json.load(open(transform_file(str(tmp_path), 'energy', 'D')))
    assert record['num_pixels'] == 6 * 8
    assert (tmp_path / 'anomaly_p' / 'energy' / 'D' / '0.hdf5').exists()
    assert not (tmp_path / 'anomaly_p' / 'energy' / 'D' / '1.hdf5').exists()
    assert not list(tmp_path.glob('mmseg_ood_spill_*'))
