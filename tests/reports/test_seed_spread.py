"""Mean and spread over seeds (``evaluation.seed_spread``), and the tools
that print them: ``compare_results --seed-roots`` and ``seed_summary``."""
import json
import statistics

import pytest

from mmseg_ood.reports.seed_spread import (background_spreads,
                                           calibration_spreads, format_spread,
                                           seed_spreads, spread)
from mmseg_ood.tools.analysis import compare_results, seed_summary


def test_spread_is_the_sample_standard_deviation():
    values = [0.8874, 0.8712, 0.8930]
    s = spread(values)
    assert s['mean'] == pytest.approx(statistics.mean(values), abs=1e-15)
    assert s['sd'] == pytest.approx(statistics.stdev(values), abs=1e-15)
    assert (s['min'], s['max'], s['n'], s['undefined']) == (
        0.8712, 0.8930, 3, 0)
    # by hand: mean 0.88386..., deviations 36.7e-4, -126.7e-4, 91.3e-4
    assert format_spread(s) == '88.39 ± 1.13 (87.12-89.30)'


def test_undefined_values_are_counted_not_averaged():
    s = spread([0.5, None, float('nan')])
    assert (s['mean'], s['sd'], s['n'], s['undefined']) == (0.5, None, 1, 2)
    assert format_spread(s) == '50.00'
    assert format_spread(spread([None])) == 'n/a'


def _payload(miou, ap, complete=True):
    return dict(complete=complete, id_miou=dict(test_set=miou),
                results=dict(ood=dict(energy=dict(auroc=0.9, ap=ap,
                                                  fpr95=0.3))))


def test_seed_spreads_over_runs_and_their_errors():
    runs = [dict(a=_payload(88.0, 0.40)), dict(a=_payload(90.0, 0.50))]
    out = seed_spreads(runs, 'ood', ['energy'])
    assert out['a']['id_miou']['mean'] == pytest.approx(0.89)
    assert out['a']['energy']['ap']['sd'] == pytest.approx(
        statistics.stdev([0.4, 0.5]))
    with pytest.raises(ValueError, match="seed run 1 has no model 'a'"):
        seed_spreads([runs[0], dict(b=_payload(1, 0.1))], 'ood', ['energy'])
    # a scorer no seed has is not this model's: left out
    assert 'msp' not in seed_spreads(runs, 'ood', ['energy', 'msp'])['a']
    partial = [dict(a=_payload(88.0, 0.4)), dict(a=_payload(90.0, 0.5))]
    partial[1]['a']['results']['ood']['msp'] = dict(auroc=0.5, ap=0.1,
                                                    fpr95=0.9)
    with pytest.raises(ValueError, match=r"scorer 'msp' missing from seed "
                       r'run\(s\) \[0\]'):
        seed_spreads(partial, 'ood', ['msp'])
    with pytest.raises(ValueError, match='incomplete'):
        seed_spreads([dict(a=_payload(1, 0.1, complete=False))], 'ood',
                     ['energy'])
    with pytest.raises(ValueError, match="no results on 'other'"):
        seed_spreads(runs, 'other', ['energy'])


def _write(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def test_compare_results_seed_roots(tmp_path, capsys):
    for i, (miou, ap) in enumerate([(88.0, 0.40), (90.0, 0.50),
                                    (89.0, 0.45)]):
        _write(tmp_path / f's{i}' / 'base' / 'ood' / 'results.json',
               _payload(miou, ap))
    out = tmp_path / 'table.md'
    compare_results.main([str(tmp_path / 's0'), 'base', '--seed-roots',
                          str(tmp_path / 's1'), str(tmp_path / 's2'),
                          '--dataset', 'ood', '--scorers', 'energy',
                          '--out', str(out)])
    row = '| base | 3 | 89.00 ± 1.00 (88.00-90.00) | energy | 90.00 ± ' \
        '0.00 (90.00-90.00) | 45.00 ± 5.00 (40.00-50.00) |'
    assert row in out.read_text() and row in capsys.readouterr().out
    _write(tmp_path / 's0' / 'other' / 'ood' / 'results.json',
           _payload(88.0, 0.40))
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        compare_results.main([str(tmp_path / 's0'), 'base', 'other',
                              '--seed-roots', str(tmp_path / 's1'),
                              '--dataset', 'ood', '--scorers', 'msp'])
    assert e.value.code == 2
    assert 's1/other/ood/results.json not found' in capsys.readouterr().err


def test_compare_results_component_columns(tmp_path, capsys):
    for i, (siou, ppv) in enumerate([(0.30, 0.50), (0.40, 0.70)]):
        payload = _payload(88.0 + i, 0.4)
        payload['results']['ood']['energy'].update(siou=siou, ppv=ppv,
                                                   mean_f1=0.2)
        _write(tmp_path / f's{i}' / 'base' / 'ood' / 'results.json',
               payload)
    compare_results.main([str(tmp_path / 's0'), 'base', '--seed-roots',
                          str(tmp_path / 's1'), '--dataset', 'ood',
                          '--scorers', 'energy', '--columns', 'siou', 'ppv'])
    out = capsys.readouterr().out
    assert '| model | seeds | ID mIoU | scorer | sIoU | PPV |' in out
    sd = 100 * statistics.stdev([0.5, 0.7])
    assert (f'| 35.00 ± {100 * statistics.stdev([0.3, 0.4]):.2f} '
            f'(30.00-40.00) | 60.00 ± {sd:.2f} (50.00-70.00) |') in out
    # one root: plain values
    compare_results.main([str(tmp_path / 's1'), 'base', '--dataset', 'ood',
                          '--scorers', 'energy', '--columns', 'ap',
                          'mean_f1'])
    assert '| base | 89.00 | energy | 40.00 | 20.00 |' in \
        capsys.readouterr().out
    for bad, message in ((['--columns', 'iou'], "invalid choice: 'iou'"),
                         (['--columns', 'ap', 'ap'], "names 'ap' twice"),
                         (['--segments', '--columns', 'ap'],
                          'not --segments')):
        with pytest.raises(SystemExit) as e:
            compare_results.main([str(tmp_path / 's1'), 'base'] + bad)
        assert e.value.code == 2
        assert message in capsys.readouterr().err


def _robustness(ece_clean, ece_noise, nd=0.01, models=('b', 'i')):
    cells = {}
    for m in models:
        cells[f'{m}|clean|0|ss'] = dict(miou=0.9, ece=ece_clean,
                                        non_distinctiveness=nd)
        cells[f'{m}|gaussian_noise|5|ss'] = dict(miou=0.6, ece=ece_noise,
                                                 non_distinctiveness=nd)
        cells[f'{m}|fog|5|ss'] = dict(miou=0.7, ece=ece_noise + 0.02,
                                      non_distinctiveness=nd)
    return dict(schema=2, complete=True, models=list(models), cells=cells,
                settings=dict(corruptions=['gaussian_noise', 'fog'],
                              severities=[5], msc=False, ood_datasets=[]))


def test_calibration_spreads_separate_clean_from_corrupted():
    out = calibration_spreads([_robustness(0.01, 0.10),
                               _robustness(0.03, 0.20)])
    b = out['b']
    assert b['clean ECE']['mean'] == pytest.approx(0.02)
    # corrupted: the mean over the cells of each seed, then over seeds
    assert b['corrupted ECE (mean over cells)']['mean'] == pytest.approx(
        (0.11 + 0.21) / 2)
    assert b['corrupted mIoU (mean over cells)']['mean'] == pytest.approx(
        0.65)
    with pytest.raises(ValueError, match='other models or cells'):
        calibration_spreads([_robustness(0.01, 0.1),
                             _robustness(0.01, 0.1, models=('b', ))])
    old = _robustness(0.01, 0.1)
    old['schema'] = 1
    with pytest.raises(ValueError, match='schema 1'):
        calibration_spreads([_robustness(0.01, 0.1), old])


def test_background_spreads_and_a_model_without_background():
    def r(pooled, applicable=True):
        return dict(background_iou=dict(tex=dict(applicable=applicable,
                                                 pooled=pooled)))
    out = background_spreads(dict(ibe=[r(90.0), r(94.0)],
                                  plain=[r(0, False), r(0, False)]))
    assert out['ibe']['tex']['mean'] == pytest.approx(0.92)
    assert out['plain']['tex']['mean'] is None


def test_seed_summary_tool(tmp_path, capsys):
    for i, ece in enumerate((0.01, 0.03)):
        _write(tmp_path / f's{i}' / 'robustness' / 'robustness.json',
               _robustness(ece, 0.1))
        for m in ('b', 'i'):
            _write(tmp_path / f's{i}' / 'background_iou' / m /
                   'results.json',
                   dict(results={},
                        background_iou=dict(tex=dict(applicable=True,
                                                     pooled=90.0 + i))))
    out = tmp_path / 'sum.md'
    seed_summary.main([str(tmp_path / 's0'), str(tmp_path / 's1'),
                       '--out', str(out)])
    text = out.read_text()
    assert '| clean ECE | 2.00 ± 1.41 (1.00-3.00) |' in text
    assert '| tex | 90.50 ± 0.71 (90.00-91.00) |' in text
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        seed_summary.main([str(tmp_path / 'missing')])
    assert e.value.code == 2
    assert 'robustness.json not found' in capsys.readouterr().err


@pytest.mark.parametrize('script,arg,message', [
    ('seed_study.sh', 'bogus', "unknown part 'bogus'"),
    ('compare_ood_training.sh', 'bogus', "no config for variant 'bogus'"),
])
def test_study_scripts_refuse_an_unknown_part_before_running(
        script, arg, message, tmp_path):
    """Both scripts check their arguments before any training (they run
    for hours); nothing is written."""
    import os
    import subprocess
    repo = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    env = dict(os.environ, PY='false', SEED_WORK_DIR=str(tmp_path / 'w'),
               COMPARE_WORK_DIR=str(tmp_path / 'w'))
    proc = subprocess.run(['bash', os.path.join(repo, 'scripts', script),
                           arg], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and message in proc.stderr
    assert not (tmp_path / 'w').exists()
