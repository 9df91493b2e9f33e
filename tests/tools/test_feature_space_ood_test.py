"""``ood_test`` with the scorers fitted on ID data: one fitting pass for
all of them, the statistics written beside the results and reused."""
import json
import os.path as osp

import numpy as np
import pytest

from conftest import ONE_THREAD_ENV, QUICK_OPTIONS, STREET_CONFIG, run_tool
from mmseg_ood.scorers import FeatureStatistics, StandardizedMaxLogit

FITTED = ['sml', 'react', 'dice', 'vim:bank_size=500', 'mahalanobis', 'rmd',
          'knn:bank_size=500']
SCORERS = ['energy', 'ash', 'odin'] + FITTED


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def _run(out, synthetic_root, trained_work_dir, *scorers):
    return run_tool(
        'ood_test.py', STREET_CONFIG, _ckpt(trained_work_dir), '--work-dir',
        str(out), '--datasets', 'synthetic_ood', '--scorers', *scorers,
        '--fit-on', 'val', '--no-id-eval', '--cfg-options', *QUICK_OPTIONS,
        env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})


@pytest.fixture(scope='module')
def fitted_run(tmp_path_factory, synthetic_root, trained_work_dir):
    out = tmp_path_factory.mktemp('feature_space')
    proc = _run(out, synthetic_root, trained_work_dir, *SCORERS)
    # kept: the tests below run the tool again in this work dir
    (out / 'first.json').write_text((out / 'results.json').read_text())
    return out, proc


def test_every_scorer_is_fitted_once_and_reported(fitted_run):
    out, proc = fitted_run
    res = json.loads((out / 'results.json').read_text())
    assert set(res['results']['synthetic_ood']) == set(SCORERS)
    for name, r in res['results']['synthetic_ood'].items():
        assert 0 <= r['auroc'] <= 1 and 0 <= r['ap'] <= 1, name
    features = str(out / 'feature_statistics_val.npz')
    stats = FeatureStatistics.load(features)
    # 2 val images of 128 x 256 at the head's stride 4
    assert stats.pixels == 2 * 32 * 64
    assert dict(stats.spec) == dict(moments=True, histogram=True,
                                    bank_size=500)
    assert len(stats.bank) == 500 and stats.dim == 128
    assert stats.meta['split'] == 'val' and \
        len(stats.meta['checkpoint_sha256']) == 64
    sml = StandardizedMaxLogit(stats_file=str(out / 'sml_statistics_val.json'))
    assert sml.stats.count.sum() == stats.pixels
    # the classes SML and the moments saw are the same predictions
    np.testing.assert_array_equal(sml.stats.count, stats.class_count)
    assert set(res['fitted']) == set(FITTED)
    for name, r in res['fitted'].items():
        assert r['fitted_in_this_run'] is True and r['split'] == 'val'
        assert r['pixels'] == stats.pixels
        assert r['file'] == (str(out / 'sml_statistics_val.json')
                             if name == 'sml' else features)
    # one fitting pass over the 2 val images wrote both files
    assert proc.stdout.count('fit_on_val 2/2 (100%)') == 1
    log = open(proc.stdout.split('[ood_test] log: ')[1].split()[0]).read()
    assert log.count('statistics of the val set saved to') == 2


def test_the_statistics_are_reused_while_they_serve(fitted_run,
                                                    synthetic_root,
                                                    trained_work_dir):
    out, _ = fitted_run
    first = json.loads((out / 'first.json').read_text())
    _run(out, synthetic_root, trained_work_dir, 'mahalanobis',
         'knn:k=5,bank_size=500')
    again = json.loads((out / 'results.json').read_text())
    assert again['fitted']['mahalanobis']['fitted_in_this_run'] is False
    knn = again['fitted']['knn:k=5,bank_size=500']
    assert knn['fitted_in_this_run'] is False
    assert again['results']['synthetic_ood']['mahalanobis'] == \
        first['results']['synthetic_ood']['mahalanobis']
    # a larger bank than the file holds: fitted again
    _run(out, synthetic_root, trained_work_dir, 'knn:bank_size=600')
    third = json.loads((out / 'results.json').read_text())
    assert third['fitted']['knn:bank_size=600']['fitted_in_this_run'] is True
    # what the file held is still collected: it serves the others too
    assert dict(FeatureStatistics.load(
        str(out / 'feature_statistics_val.npz')).spec) == dict(
            moments=True, histogram=True, bank_size=600)


def test_a_given_statistics_file_is_used_as_it_is(fitted_run, synthetic_root,
                                                  trained_work_dir, tmp_path):
    out, _ = fitted_run
    path = str(out / 'feature_statistics_val.npz')
    _run(tmp_path, synthetic_root, trained_work_dir,
         f'mahalanobis:stats_file={path}')
    res = json.loads((tmp_path / 'results.json').read_text())
    assert 'fitted' not in res
    assert not (tmp_path / 'feature_statistics_val.npz').exists()
    first = json.loads((out / 'first.json').read_text())
    # the moments of a refit on the same pixels are the same
    assert res['results']['synthetic_ood'][f'mahalanobis:stats_file={path}'] \
        == first['results']['synthetic_ood']['mahalanobis']
