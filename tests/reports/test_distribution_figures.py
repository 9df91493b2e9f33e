"""Score distributions from histograms, the figures drawn from them, and
the ``--tune`` grid syntax (all in-process, small)."""
import json

import numpy as np
import pytest

from conftest import STREET_CONFIG

PNG = b'\x89PNG\r\n\x1a\n'


def _png(path):
    data = open(path, 'rb').read()
    assert len(data) > 1000 and data.startswith(PNG), path
    return data


def _samples(seed=0):
    rng = np.random.default_rng(seed)
    ood = rng.normal(0.6, 0.15, 3000)
    idd = rng.beta(1.2, 6.0, 20000)
    scores = np.concatenate([idd, ood]).astype(np.float32)
    labels = np.concatenate([np.zeros(idd.size), np.ones(ood.size)])
    return scores, labels.astype(np.uint8), idd.astype(np.float32), \
        ood.astype(np.float32)


# --- ScoreDistribution
def test_hand_worked_counts():
    """Values 0, 1, 2, 3 with 1, 2, 3, 4 ID pixels in 3 bins of width 1:
    bins [0, 1), [1, 2), [2, 3] hold 1, 2, 3 + 4 pixels."""
    from mmseg_ood.evaluation.accumulators.score_distribution import (
                                                                      ScoreDistribution)
    d = ScoreDistribution.from_counts([0, 1, 2, 3], [0, 0, 1, 0],
                                      [1, 2, 3, 4], num_bins=3)
    assert d.edges.tolist() == [0, 1, 2, 3]
    assert d.id_counts.tolist() == [1, 2, 7]
    assert d.ood_counts.tolist() == [0, 0, 1]
    # median of 10 ID pixels: rank 5, in the third bin (cum 3 -> 10) at
    # 2 + (5 - 3) / 7
    assert d.quantile(0.5, 'id') == pytest.approx(2 + 2 / 7)
    assert d.quantile(0.0, 'id') == 0.0 and d.quantile(1.0, 'id') == 3.0
    assert np.sum(d.density('id') * d.widths) == pytest.approx(1.0)
    # "OOD if >= t", correct at the edges 0, 1, 2, 3: ID below + OOD at
    # or above = 0 + 1, 1 + 1, 3 + 1, 10 + 0 of 11 pixels
    assert d.best_accuracy_threshold() == dict(threshold=3.0,
                                               accuracy=10 / 11)


@pytest.mark.parametrize('method', ['inverted_cdf', 'linear'])
def test_quantiles_agree_with_numpy_within_a_bin(method):
    from mmseg_ood.evaluation.accumulators.score_distribution import (
                                                                      ScoreDistribution)
    scores, labels, idd, ood = _samples()
    d = ScoreDistribution.from_scores(scores, labels, num_bins=64)
    width = d.widths[0]
    q = np.array([0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
    for which, raw in (('id', idd), ('ood', ood)):
        exact = np.quantile(raw.astype(np.float64), q, method=method)
        assert np.abs(d.quantile(q, which) - exact).max() <= width
        assert d.total(which) == raw.size
    # a coarser grid: within its own (wider) bin
    coarse = ScoreDistribution.from_scores(scores, labels, num_bins=8)
    err = np.abs(coarse.quantile(q, 'ood') - np.quantile(ood, q,
                                                         method=method))
    assert err.max() <= coarse.widths[0]


def test_from_the_streaming_histogram_as_from_the_raw_scores():
    """The metric's own histogram (bins of 2^-11 of the magnitude) gives
    the same quantiles as the raw scores, within a bin."""
    from mmseg_ood.evaluation import PixelOODAccumulator
    from mmseg_ood.evaluation.accumulators.score_distribution import (
                                                                      ScoreDistribution)
    scores, labels, idd, ood = _samples(1)
    m = PixelOODAccumulator()
    for part in np.array_split(np.arange(scores.size), 5):  # 5 "images"
        m.update(scores[part], labels[part])
    d = ScoreDistribution.from_streaming(m, num_bins=128)
    q = np.linspace(0.05, 0.95, 19)
    for which, raw in (('id', idd), ('ood', ood)):
        exact = np.quantile(raw, q, method='inverted_cdf')
        tol = d.widths[0] + 2.0**-11 * np.abs(exact)
        assert np.all(np.abs(d.quantile(q, which) - exact) <= tol)
    assert d.total('id') == idd.size and d.total('ood') == ood.size


def test_violin_statistics_are_numpy_s():
    """What the violin draws: its median and quartiles are numpy's within
    the bin width, its extent the data's range (to a bin)."""
    from mmseg_ood.reports.figures import _violin_stats
    from mmseg_ood.evaluation.accumulators.score_distribution import (
                                                                      ScoreDistribution)
    scores, labels, idd, ood = _samples(2)
    d = ScoreDistribution.from_scores(scores, labels, num_bins=100)
    w = d.widths[0]
    for which, raw in (('id', idd), ('ood', ood)):
        s = _violin_stats(d, which, (0.25, 0.75))
        assert abs(s['median'] - np.median(raw)) <= w
        assert np.allclose(s['quantiles'], np.quantile(raw, [0.25, 0.75]),
                           atol=w, rtol=0)
        assert abs(s['mean'] - raw.mean()) <= w / 2
        assert s['min'] <= raw.min() + w and s['max'] >= raw.max() - w
        assert s['coords'][0] <= raw.min() and s['coords'][-1] >= raw.max()
        # the density drawn integrates to 1 over the occupied bins
        assert np.trapezoid(s['vals'][1:-1], s['coords'][1:-1]) == \
            pytest.approx(1.0, abs=0.05)


def test_distribution_file_round_trip_and_errors(tmp_path):
    from mmseg_ood.evaluation.accumulators.score_distribution import (
                                                                      ScoreDistribution,
                                                                      load_distributions,
                                                                      save_distributions)
    scores, labels, _, _ = _samples(3)
    d = ScoreDistribution.from_scores(scores, labels, num_bins=16)
    path = str(tmp_path / 'ds.json')
    save_distributions(path, 'ds', {'entropy': d})
    back = load_distributions(path)['entropy']
    assert np.array_equal(back.edges, d.edges)
    assert np.array_equal(back.id_counts, d.id_counts)
    assert np.array_equal(back.ood_counts, d.ood_counts)
    data = json.load(open(path))
    data['scorers']['entropy']['id'] = data['scorers']['entropy']['id'][:-1]
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"bad.json: scorer 'entropy': "
                       r'`id_counts` must be 16 counts'):
        load_distributions(str(bad))
    bad.write_text(json.dumps(dict(data, schema=7)))
    with pytest.raises(ValueError, match='schema 1 .*got schema 7'):
        load_distributions(str(bad))
    bad.write_text('{')
    with pytest.raises(ValueError, match='not valid JSON'):
        load_distributions(str(bad))
    with pytest.raises(ValueError, match='strictly increasing'):
        ScoreDistribution([0, 0], [1], [0])
    with pytest.raises(ValueError, match='`q` must be in'):
        d.quantile(1.5, 'id')


# --- figures
def test_every_figure_is_written(tmp_path):
    from mmseg_ood.engine.tuning import (restrict_grid, tune_values,
                                         tuning_scorers)
    from mmseg_ood.reports.figures import (plot_distribution_violins,
                                           plot_open_set_miou,
                                           plot_score_distributions,
                                           plot_tuning_sweeps)
    from mmseg_ood.evaluation.accumulators.score_distribution import (
                                                                      ScoreDistribution)
    scores, labels, _, _ = _samples(4)
    a = ScoreDistribution.from_scores(scores, labels)
    b = ScoreDistribution.from_scores(np.abs(scores) ** 0.5, labels)
    p = plot_score_distributions(str(tmp_path / 'd' / 'ds.png'), 'ds',
                                 {'entropy': a, 'msp': b},
                                 {'entropy': dict(ap=0.3, auroc=0.9)})
    _png(p)
    _png(plot_distribution_violins(str(tmp_path / 'v.png'),
                                   {'before': a, 'after': b}, 'entropy'))
    values = tune_values(['temperature=0.01,0.1,1', 'eta=0,1'])
    grid = restrict_grid(tuning_scorers(values), list(values))
    tuning = dict(dataset='ds', tuned=list(values), grid={
        n: dict(params=c, ap=0.1 + 0.01 * i)
        for i, (n, c) in enumerate(grid.items())},
        best={'n_energy': dict(point='n_energy[eta=0,delta=0,T=0.01]')})
    paths = plot_tuning_sweeps(str(tmp_path / 'tuning'), tuning)
    assert sorted(paths) == ['eta', 'temperature']
    for path in paths.values():
        _png(path)
    _png(plot_open_set_miou(str(tmp_path / 'o.png'), {'m': dict(
        scorer='entropy', thresholds=[0.1, 0.5, 1.0],
        miou=[50.0, 80.0, 90.0], plain=90.0)}))
    with pytest.raises(ValueError, match="no 'plain'"):
        plot_open_set_miou(str(tmp_path / 'x.png'), {'m': dict(
            thresholds=[0.5], miou=[1.0])})
    assert not list(tmp_path.glob('**/*.tmp'))


# --- the --tune grid
def test_tune_values_default_and_own_grids():
    from mmseg_ood.engine.tuning import (TUNE_GRID, restrict_grid, tune_values,
                                         tuning_scorers)
    assert tune_values(['eta']) == {'eta': TUNE_GRID['eta']}
    # the default grid is unchanged
    assert restrict_grid(tuning_scorers(tune_values(['eta'])), ['eta']) == \
        restrict_grid(tuning_scorers(), ['eta'])
    v = tune_values(['temperature=0.01,0.02,0.05,0.1,0.2,0.5,1', 'delta'])
    assert v == {'temperature': (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
                 'delta': TUNE_GRID['delta']}
    assert tune_values(['eta=[0, 0.5]']) == {'eta': (0.0, 0.5)}
    assert tune_values({'eta': (0, 2), 'temperature': None}) == {
        'eta': (0.0, 2.0), 'temperature': TUNE_GRID['temperature']}
    grid = restrict_grid(tuning_scorers({'temperature': (0.05, 0.5)}),
                         ['temperature'])
    assert sorted(grid) == ['energy[T=0.05]', 'energy[T=0.5]',
                            'n_energy[eta=1,delta=0,T=0.05]',
                            'n_energy[eta=1,delta=0,T=0.5]']


@pytest.mark.parametrize('tune, message', [
    (['eta2=1'], r"takes \['delta', 'eta', 'temperature'\], got \['eta2'\]"),
    (['eta', 'eta=0,1'], r"names \['eta'\] more than once"),
    (['temperature='], 'temperature= lists no values'),
    (['eta=1,,2'], 'eta=1,,2: an empty value'),
    (['eta=0,abc'], "eta: 'abc' is not a number"),
    (['eta=nan'], "finite, got 'nan'"),
    (['temperature=0.1,0'], "temperature must be > 0, got '0'"),
    (['temperature=-0.5'], "temperature must be > 0, got '-0.5'"),
    (['delta=0,1.5'], r"delta must be in \[0, 1\], got '1.5'"),
    (['delta=-0.1'], r"delta must be in \[0, 1\], got '-0.1'"),
    (['eta=1,1.0'], 'eta lists 1 twice'),
    ({'eta': []}, 'the list of values is empty'),
])
def test_tune_values_errors(tune, message):
    from mmseg_ood.engine.tuning import tune_values
    with pytest.raises(ValueError, match=message):
        tune_values(tune)


@pytest.mark.parametrize('argv, message', [
    (['--tune', 'temperature=0'], "temperature must be > 0, got '0'"),
    (['--tune', 'eta', 'eta=1'], r"names \['eta'\] more than once"),
    (['--tune', 'tau=1'], r"got \['tau'\]"),
    (['--tune', 'delta=2'], r"delta must be in \[0, 1\], got '2'"),
    (['--tune', 'eta=x'], "eta: 'x' is not a number"),
    (['--tune', 'eta='], 'eta= lists no values'),
    (['--open-set-iou', '--no-id-eval'], '--open-set-iou is computed in'),
])
def test_cli_grid_errors_are_one_line(argv, message, capsys):
    import re

    from mmseg_ood.tools.ood_test import parse_args
    with pytest.raises(SystemExit) as info:
        parse_args(['config.py', 'model.pth'] + argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if 'error:' in ln]
    assert len(lines) == 1 and re.search(message, lines[0]), err
    assert 'Traceback' not in err


def test_cli_grid_reaches_the_api():
    from mmseg_ood.tools.ood_test import parse_args
    args = parse_args(['c.py', 'm.pth', '--tune', 'eta',
                       'temperature=0.01,1'])
    assert args.tune == {'eta': (0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
                         'temperature': (0.01, 1.0)}
    assert parse_args(['c.py', 'm.pth']).tune == {}


def test_api_refuses_a_bad_grid_before_reading_anything(tmp_path):
    from mmseg_ood.apis import ood_test
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ood_test(STREET_CONFIG, 'no.pth', str(tmp_path),
                 tune=['temperature=0,1'])
    with pytest.raises(ValueError, match='`open_set_iou` is computed'):
        ood_test(STREET_CONFIG, 'no.pth', str(tmp_path), open_set_iou=True,
                 id_eval=False)
    assert not list(tmp_path.iterdir())
