"""``tools/ood_test.py --scorers maskomaly --tune-on REF``: the query
selection fitted on a labelled reference set disjoint from the evaluated
ones, saved, recorded and reused; the refusals before anything runs."""
import json
import os.path as osp

import numpy as np
import pytest

from conftest import ONE_THREAD_ENV, QUICK_CFG, QUICK_OPTIONS, REPO, run_tool
from mmseg_ood.apis import OODTestOptions, ood_test
from mmseg_ood.scorers.mask_classification.maskomaly import QuerySelection

M2F_CONFIG = osp.join(REPO, 'configs', 'synthetic',
                      'mask2former_r18_1xb8-300it_synthetic-street-128x256.py')
EVAL, REF = 'synthetic_ood', 'synthetic_objects_ood'


# ---------------------------------------------------------------------------
# refused before the config or the checkpoint is read

def test_the_evaluated_set_is_refused_as_reference(tmp_path):
    work = tmp_path / 'work'
    with pytest.raises(ValueError, match=(
            r"^`tune_on` 'synthetic_ood' is the evaluated dataset "
            r"'synthetic_ood': scorer 'maskomaly:top_k=2' selects its "
            'queries on a labelled reference set that must be disjoint '
            'from `datasets`; give another --tune-on$')):
        ood_test(M2F_CONFIG, 'no.pth', work_dir=str(work),
                 datasets=[REF, EVAL], scorers=['rba', 'maskomaly:top_k=2'],
                 tune_on=EVAL)
    assert not work.exists()


def test_a_preset_reading_the_evaluated_data_is_refused(tmp_path):
    # the same data under another preset name
    src = osp.join(REPO, 'configs', '_base_', 'datasets', 'ood',
                   f'{EVAL}.py')
    copy = tmp_path / 'my_reference.py'
    copy.write_text(open(src).read())
    with pytest.raises(ValueError, match=(
            r"`tune_on` 'my_reference' reads the data of the evaluated "
            r"dataset 'synthetic_ood' \(.*street/ood\)")):
        ood_test(M2F_CONFIG, 'no.pth', work_dir=str(tmp_path / 'w'),
                 datasets=[EVAL], scorers=['maskomaly'], tune_on=str(copy))


def test_tune_on_is_needed_by_maskomaly_and_only_then_allowed_alone():
    with pytest.raises(ValueError, match="^scorer 'maskomaly' selects its "
                       r'queries on a labelled reference set: give it with '
                       r'`tune_on` \(--tune-on DATASET'):
        OODTestOptions(scorers=['maskomaly']).validate()
    OODTestOptions(scorers=['maskomaly'], tune_on=REF).validate()
    # with a file (or without maskomaly) there is nothing to fit: the
    # error of before
    OODTestOptions(scorers=['maskomaly:queries=[0,1]']).validate()
    with pytest.raises(ValueError, match='is given but nothing to tune'):
        OODTestOptions(scorers=['maskomaly:queries=[0,1]'],
                       tune_on=REF).validate()
    with pytest.raises(ValueError, match='is given but nothing to tune'):
        OODTestOptions(scorers=['rba'], tune_on=REF).validate()


def test_the_flags_reach_the_options():
    from mmseg_ood.tools.ood_test import build_options, parse_args
    args = parse_args(['c.py', 'm.pth', '--datasets', EVAL, '--scorers',
                       'maskomaly', '--tune-on', REF])
    options = build_options(args)
    assert options.tune_on == REF and options.tune == {}
    options.validate()


# ---------------------------------------------------------------------------
# end to end on a 2-iteration Mask2Former

@pytest.fixture(scope='module')
def m2f_checkpoint(tmp_path_factory, synthetic_root):
    work = tmp_path_factory.mktemp('m2f_train')
    run_tool('train.py', M2F_CONFIG, '--work-dir', str(work), '--cfg-options',
             *QUICK_OPTIONS, env={'MMSEG_OOD_DATA': synthetic_root})
    return (work / 'last_checkpoint').read_text().strip()


@pytest.fixture(scope='module')
def fitted_run(tmp_path_factory, synthetic_root, m2f_checkpoint):
    out = tmp_path_factory.mktemp('maskomaly')
    proc = run_tool(
        'ood_test.py', M2F_CONFIG, m2f_checkpoint, '--work-dir', str(out),
        '--datasets', EVAL, '--scorers', 'maskomaly',
        'maskomaly:top_k=2,select_by=ap', 'rba', '--tune-on', REF,
        '--no-id-eval', '--cfg-options', *QUICK_OPTIONS,
        env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    return out, proc


def test_the_selection_is_fitted_on_the_reference_set(fitted_run):
    out, _ = fitted_run
    path = out / f'maskomaly_queries_{REF}.json'
    sel = QuerySelection.load(str(path))
    assert sel.num_queries == 20  # the synthetic Mask2Former's queries
    assert sel.reference['dataset'] == REF and sel.reference['images'] == 3
    assert len(sel.ap) == len(sel.iou) == 20
    assert all(0 <= v <= 1 for v in sel.ap)
    assert sel.binding['checkpoint_sha256'] and sel.mask_threshold == 0.9
    res = json.loads((out / 'results.json').read_text())
    # the reference set is not evaluated; the evaluated one is
    assert list(res['results']) == [EVAL]
    assert set(res['results'][EVAL]) == {
        'maskomaly', 'maskomaly:top_k=2,select_by=ap', 'rba'}
    rec = res['maskomaly']
    assert rec['maskomaly']['queries'] == sel.top(4, 'iou')
    assert rec['maskomaly']['select_by'] == 'iou'
    assert rec['maskomaly:top_k=2,select_by=ap']['queries'] == sel.top(
        2, 'ap')
    for r in rec.values():
        assert r['reference']['dataset'] == REF
        assert r['file'] == str(path) and r['fitted_in_this_run'] is True
        assert r['ap'] == [sel.ap[q] for q in r['queries']]
    md = (out / 'results.md').read_text()
    assert '## Maskomaly query selection' in md
    assert f'top 2 by ap | {REF} (3 images)' in md
    for metrics in res['results'][EVAL].values():
        assert 0 <= metrics['auroc'] <= 1


def test_a_saved_selection_is_reused_and_checked(fitted_run, synthetic_root,
                                                 m2f_checkpoint, tmp_path,
                                                 monkeypatch):
    out, _ = fitted_run
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    path = str(out / f'maskomaly_queries_{REF}.json')
    first = json.loads((out / 'results.json').read_text())
    spec = f'maskomaly:queries_file={path}'
    res = ood_test(M2F_CONFIG, m2f_checkpoint, work_dir=str(tmp_path / 'a'),
                   datasets=[EVAL], scorers=[spec], id_eval=False,
                   cfg_options=dict(QUICK_CFG))
    assert res['maskomaly'][spec]['queries'] == \
        first['maskomaly']['maskomaly']['queries']
    assert res['maskomaly'][spec]['fitted_in_this_run'] is False
    # the same queries on the same images: the same numbers
    np.testing.assert_allclose(res['results'][EVAL][spec]['ap'],
                               first['results'][EVAL]['maskomaly']['ap'],
                               rtol=1e-6)
    # a later --tune-on run in a work dir holding the file reuses it
    reuse = tmp_path / 'reuse'
    reuse.mkdir()
    (reuse / osp.basename(path)).write_text(open(path).read())
    res = ood_test(M2F_CONFIG, m2f_checkpoint, work_dir=str(reuse),
                   datasets=[EVAL], scorers=['maskomaly'], tune_on=REF,
                   id_eval=False, cfg_options=dict(QUICK_CFG))
    assert res['maskomaly']['maskomaly']['fitted_in_this_run'] is False
    assert res['maskomaly']['maskomaly']['queries'] == \
        first['maskomaly']['maskomaly']['queries']
    # a file bound to another checkpoint
    data = json.loads(open(path).read())
    data['binding']['checkpoint_sha256'] = '0' * 64
    other = tmp_path / 'other.json'
    other.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=(
            r'queries_file .*other.json belongs to another checkpoint .*'
            'SHA-256 000000000000...')):
        ood_test(M2F_CONFIG, m2f_checkpoint, work_dir=str(tmp_path / 'b'),
                 datasets=[EVAL], scorers=[f'maskomaly:queries_file={other}'],
                 id_eval=False, cfg_options=dict(QUICK_CFG))
    # and one of a model with another number of queries
    data = json.loads(open(path).read())
    data['num_queries'] = 100
    for key in ('ap', 'iou'):
        data['per_query'][key] = data['per_query'][key] * 5
    wide = tmp_path / 'wide.json'
    wide.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='fitted on a model with 100 '
                       'queries; this model has 20'):
        ood_test(M2F_CONFIG, m2f_checkpoint, work_dir=str(tmp_path / 'c'),
                 datasets=[EVAL], scorers=[f'maskomaly:queries_file={wide}'],
                 id_eval=False, cfg_options=dict(QUICK_CFG))


def test_feature_space_scorers_are_refused_on_a_mask_head(
        m2f_checkpoint, synthetic_root, tmp_path, monkeypatch):
    """Asked for by name on a Mask2Former (no per-pixel linear classifier),
    an embedding scorer is an error naming the head, before anything is
    fitted or written."""
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    with pytest.raises(ValueError, match="'mahalanobis' is an embedding "
                       'scorer.*Mask2Former'):
        ood_test(M2F_CONFIG, m2f_checkpoint, work_dir=str(tmp_path),
                 datasets=[EVAL], scorers=['rba', 'mahalanobis'],
                 fit_on='val', id_eval=False, cfg_options=dict(QUICK_CFG))
    assert not (tmp_path / 'feature_statistics_val.npz').exists()
    assert not (tmp_path / 'results.json').exists()
