"""tools/ood_test.py with a command-line tuning grid and --open-set-iou:
what results.json records, the class-weight norms and every figure; then
tools/compare_results.py's violins and open-set curves over two runs.

One ood_test run through the command line serves every test here."""
import json
import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest
import torch

from conftest import ONE_THREAD_ENV, QUICK_OPTIONS, STREET_CONFIG, run_tool

TEMPERATURES = [0.05, 0.5, 1.0]
ETAS = [0.0, 1.0]


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def _png(path):
    data = open(path, 'rb').read()
    assert len(data) > 1000 and data.startswith(b'\x89PNG'), path


@pytest.fixture(scope='module')
def figures_run(tmp_path_factory, synthetic_root, trained_work_dir):
    """WORK_ROOT/before/ood: the run; WORK_ROOT/after/ood: a copy (two
    "models" for compare_results)."""
    root = tmp_path_factory.mktemp('figures')
    out = root / 'before' / 'ood'
    proc = run_tool(
        'ood_test.py', STREET_CONFIG, _ckpt(trained_work_dir), '--work-dir',
        str(out), '--datasets', 'synthetic_ood', '--scorers', 'entropy',
        'energy', 'n_energy', '--tune', 'temperature=0.05,0.5,1',
        'eta=0,1', '--open-set-iou', '--cfg-options', *QUICK_OPTIONS,
        env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    shutil.copytree(out, root / 'after' / 'ood')
    return root, out, proc


def test_the_command_line_grid_is_what_results_json_records(figures_run):
    _, out, _ = figures_run
    tuning = json.load(open(out / 'results.json'))['tuning']
    assert tuning['tuned'] == ['temperature', 'eta']
    assert tuning['values'] == dict(temperature=TEMPERATURES, eta=ETAS)
    points = {(c['type'], c.get('eta'), c.get('delta'), c.get('temperature'))
              for c in (e['params'] for e in tuning['grid'].values())}
    expected = {('n_energy', e, 0.0, t) for e in ETAS
                for t in TEMPERATURES} | \
        {('energy', None, None, t) for t in TEMPERATURES}
    assert points == expected and len(tuning['grid']) == len(expected)
    assert tuning['bits'] == 20   # 9 points: the evaluation's resolution
    assert set(tuning['best']) == {'energy', 'n_energy'}


def test_class_weight_norms_are_the_checkpoint_s(figures_run,
                                                 trained_work_dir):
    _, out, proc = figures_run
    norms = json.load(open(out / 'results.json'))['class_weight_norms']
    state = torch.load(_ckpt(trained_work_dir), map_location='cpu',
                       weights_only=False)['state_dict']
    w = state['decode_head.conv_seg.weight'].double().flatten(1).numpy()
    expected = np.linalg.norm(w, axis=1)
    assert np.allclose(norms['per_class'], expected, rtol=1e-12, atol=0)
    assert norms['min'] == pytest.approx(expected.min(), rel=1e-12)
    assert norms['max'] == pytest.approx(expected.max(), rel=1e-12)
    assert len(norms['classes']) == w.shape[0] and \
        norms['classes'][0] == 'road'
    # printed beside the tuning table, and in results.md
    assert 'Class-weight norms ||W_c|| of the final classifier: min ' \
        f"{norms['min']:.3f}" in proc.stdout
    assert '| n_energy | n_energy[eta=' in proc.stdout
    assert 'Class-weight norms' in (out / 'results.md').read_text()


def test_every_figure_is_written(figures_run):
    _, out, _ = figures_run
    for name in ('curves/synthetic_ood_roc.png',
                 'curves/synthetic_ood_pr.png', 'curves/open_set_miou.png',
                 'distributions/synthetic_ood.png',
                 'tuning/ap_vs_temperature.png', 'tuning/ap_vs_eta.png'):
        _png(out / name)
    assert not [p for p in os.listdir(out) if p.endswith('.partial')]


def test_saved_distributions_hold_every_evaluated_pixel(figures_run):
    from mmseg_ood.evaluation.accumulators.score_distribution import (
                                                                      load_distributions)
    _, out, _ = figures_run
    res = json.load(open(out / 'results.json'))['results']['synthetic_ood']
    dists = load_distributions(str(out / 'distributions' /
                                   'synthetic_ood.json'))
    assert set(dists) == set(res)   # the tuned energy* and n_energy* too
    for name, d in dists.items():
        assert d.total('id') == res[name]['num_id']
        assert d.total('ood') == res[name]['num_ood']
        # entropy is normalized: its histogram lies in [0, 1]
    assert 0.0 <= dists['entropy'].edges[0] and \
        dists['entropy'].edges[-1] <= 1.0


def test_open_set_curve(figures_run):
    from mmseg_ood.apis.ood_test import OPEN_SET_THRESHOLDS
    _, out, _ = figures_run
    res = json.load(open(out / 'results.json'))
    curve = res['open_set_iou']
    assert curve['scorer'] == 'entropy'
    assert curve['thresholds'] == list(OPEN_SET_THRESHOLDS)
    assert len(curve['miou']) == len(OPEN_SET_THRESHOLDS)
    # the plain mIoU of the same pass is mmseg IoUMetric's (rounded to 2)
    assert curve['plain'] == pytest.approx(res['id_miou']['test_set'],
                                           abs=0.006)
    assert all(0 <= m <= 100 for m in curve['miou'])


def test_compare_results_violins_and_open_set(figures_run, capsys):
    from mmseg_ood.evaluation.accumulators.score_distribution import (
                                                                      load_distributions)
    from mmseg_ood.tools.analysis.compare_results import main
    root, out, _ = figures_run
    violins, open_set = root / 'fig3.png', root / 'fig5.png'
    main([str(root), 'before', 'after', '--dataset', 'synthetic_ood',
          '--scorers', 'entropy', '--violins', str(violins),
          '--open-set', str(open_set)])
    _png(violins)
    _png(open_set)
    table = capsys.readouterr().out
    d = load_distributions(str(out / 'distributions' /
                                'synthetic_ood.json'))['entropy']
    median = d.quantile(0.5, 'ood')
    assert f'| before | OOD | {d.total("ood")} |' in table
    assert f'{median:.4g}' in table
    with pytest.raises(SystemExit) as e:
        main([str(root), 'before', '--dataset', 'synthetic_ood',
              '--violins', str(violins), '--violin-scorer', 'msp'])
    assert e.value.code == 2
    assert re.search(r"no scorer 'msp' \(has", capsys.readouterr().err)
    # a run without the distribution files (made before they existed)
    old = root / 'old' / 'ood'
    old.mkdir(parents=True)
    shutil.copy(out / 'results.json', old / 'results.json')
    with pytest.raises(SystemExit) as e:
        main([str(root), 'before', 'old', '--dataset', 'synthetic_ood',
              '--violins', str(violins)])
    assert e.value.code == 2
    assert 'synthetic_ood.json not found' in capsys.readouterr().err
