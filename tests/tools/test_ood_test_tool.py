"""tools/ood_test.py end to end, and its pieces.

One run goes through the command line (``ood_run``); the others call
``mmseg_ood.apis.ood_test``, what the tool calls, in-process."""
import glob
import json
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch

from conftest import (ONE_THREAD_ENV, QUICK_CFG, QUICK_OPTIONS, STREET_CONFIG,
                      run_tool)

SCORERS = ['msp', 'entropy', 'max_logit', 'energy', 'norm', 'n_max_logit',
           'n_energy']


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


@pytest.fixture(scope='module')
def ood_run(tmp_path_factory, synthetic_root, trained_work_dir):
    out = tmp_path_factory.mktemp('ood_test')
    proc = run_tool(
        'ood_test.py', STREET_CONFIG, _ckpt(trained_work_dir), '--work-dir',
        str(out), '--datasets', 'synthetic_ood', '--show-dir',
        str(out / 'heat'), '--show-num', '2', '--export-smiyc',
        str(out / 'smiyc'), '--per-image', '--cfg-options', *QUICK_OPTIONS,
        env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    return out, proc


def test_writes_every_output(ood_run):
    out, proc = ood_run
    res = json.load(open(out / 'results.json'))
    assert res['complete'] is True
    assert set(res['results']['synthetic_ood']) == set(SCORERS)
    assert 0 <= res['id_miou']['test_set'] <= 100
    assert (out / 'results.csv').read_text().count('\n') == len(SCORERS) + 1
    md = (out / 'results.md').read_text()
    assert '| scorer |' in md and 'n_energy' in md
    # --per-image: both kinds, labelled, and every image listed
    assert 'AP (pooled)' in md and 'AP (per image)' in md
    assert 'synthetic_ood: 3 averaged, 0 skipped' in md
    energy = res['results']['synthetic_ood']['energy']
    assert energy['per_image_images'] == 3
    rows = (out / 'per_image.csv').read_text().splitlines()
    assert rows[0] == ('dataset,image,scorer,auroc,ap,fpr95,id_pixels,'
                       'ood_pixels,void_pixels,ood_share,ood_components,'
                       'skipped')
    assert len(rows) == 1 + 3 * len(SCORERS)
    assert res['component_threshold']['rule'] == 'best-f1'
    # what a rerun needs, recorded (tests/e2e/test_reproducibility.py)
    assert res['run']['threads']['torch'] == 1
    assert res['run']['threads']['OMP_NUM_THREADS'] == '1'
    assert res['run']['seed']['checkpoint_training'] == 0
    assert 'Run: seed 0 (checkpoint trained with seed 0), 1 torch' in md
    assert res['component_threshold']['thresholds']['synthetic_ood'][
        'energy'] == dict(rule='best_f1',
                          value=energy['best_f1_threshold'])
    assert res['labels']['synthetic_ood']['unlisted_values'][
        'voided_pixels'] == 0
    assert res['export']['transform'] == 'rank'
    assert not (out / 'results.partial.json').exists()
    for kind in ('roc', 'pr'):
        assert (out / 'curves' / f'synthetic_ood_{kind}.png').stat().st_size
    assert len(os.listdir(out / 'heat' / 'synthetic_ood')) == 2
    files = glob.glob(str(out / 'smiyc' / 'anomaly_p' / '*' /
                          'synthetic_ood' / '*.hdf5'))
    assert len(files) == 3 * len(SCORERS)
    # skipped default scorer is reported, not silently dropped
    assert "skipping scorer 'background'" in proc.stdout  # a log line
    assert '[ood_test] synthetic_ood' in proc.stdout   # progress bar title
    # mmengine's config dump, environment and hook tables: in the log only
    assert len(proc.stdout.splitlines()) < 40, proc.stdout
    for line in ('System environment', 'Hooks will be executed'):
        assert line not in proc.stdout
    logs = glob.glob(str(out / '*' / '*.log'))
    assert len(logs) == 1 and f'log: {logs[0]}' in proc.stdout
    log = open(logs[0]).read()
    assert 'System environment' in log and 'Hooks will be executed' in log
    assert re.search(r'\|\s+n_energy\s+\|', log)  # OODMetric's table


def test_smiyc_export_format(ood_run, synthetic_root):
    import h5py
    out, _ = ood_run
    path = out / 'smiyc' / 'anomaly_p' / 'energy' / 'synthetic_ood' / \
        '0001.hdf5'
    with h5py.File(path, 'r') as f:
        value = f['value'][:]
    img = cv2.imread(osp.join(synthetic_root, 'street', 'ood', 'images',
                              '0001.png'))
    assert value.dtype == np.float16 and value.shape == img.shape[:2]


def test_exported_files_give_the_tools_numbers(ood_run, synthetic_root,
                                               single_thread,
                                               trained_work_dir, monkeypatch):
    """Read back, the float16 files give every scorer's AUROC / AP / FPR95
    within 1e-3 of the exact metrics of the scores, and of results.json up
    to the tool's own binning error (2e-3 on FPR95 of this 2-iteration
    model's `norm`, whose scores span 2 % of their magnitude; on the demo
    model every difference to results.json is under 5e-4, see
    benchmarks/smiyc_export_fidelity.py); each file is the recorded
    transform of the scorer's map; the per-image means are the means of
    per_image.csv."""
    import h5py
    from mmseg.apis import init_model
    from mmseg_ood.apis import score_image
    from mmseg_ood.evaluation import pixel_ood_metrics
    from mmseg_ood.evaluation.accumulators.score_transform import (
                                                                   Float16RankTransform)
    from mmseg_ood.utils import safe_checkpoint_loading

    out, _ = ood_run
    payload = json.load(open(out / 'results.json'))
    res = payload['results']['synthetic_ood']
    files = payload['export']['transform_files']['synthetic_ood']
    root = osp.join(synthetic_root, 'street', 'ood')
    names = sorted(os.listdir(osp.join(root, 'images')))
    labels = [cv2.imread(osp.join(root, 'labels_masks',
                                  n[:-4] + '_labels_semantic.png'),
                         cv2.IMREAD_UNCHANGED) for n in names]
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    with safe_checkpoint_loading():
        model = init_model(STREET_CONFIG, _ckpt(trained_work_dir), 'cpu')
    for s in SCORERS:
        values, scores = [], []
        t = Float16RankTransform.from_dict(json.load(open(files[s])))
        for n in names:
            with h5py.File(out / 'smiyc' / 'anomaly_p' / s / 'synthetic_ood' /
                           f'{n[:-4]}.hdf5', 'r') as f:
                values.append(f['value'][:])
            scores.append(np.asarray(score_image(
                model, osp.join(root, 'images', n), [s])[s]))
            np.testing.assert_array_equal(values[-1], t(scores[-1]))
        y = np.concatenate([lab.ravel() for lab in labels])
        m = pixel_ood_metrics(
            np.concatenate([v.astype(np.float32).ravel() for v in values]), y)
        exact = pixel_ood_metrics(
            np.concatenate([v.ravel() for v in scores]), y)
        for k in ('auroc', 'ap', 'fpr95'):
            assert abs(m[k] - exact[k]) <= 1e-3, (s, k, m[k], exact[k])
            assert abs(m[k] - res[s][k]) <= 1e-3 + abs(
                res[s][k] - exact[k]), (s, k, m[k], res[s][k])
    rows = [r.split(',') for r in
            (out / 'per_image.csv').read_text().splitlines()[1:]]
    ap = [float(r[4]) for r in rows if r[2] == 'energy']
    assert res['energy']['per_image_ap'] == pytest.approx(np.mean(ap))


def test_numbers_equal_the_evaluation_api(ood_run, synthetic_root,
                                          single_thread,
                                          trained_work_dir, monkeypatch):
    """Score the same images with score_image and evaluate directly."""
    from mmseg.apis import init_model
    from mmseg_ood.apis import score_image
    from mmseg_ood.evaluation import (ComponentAccumulator,
                                      PixelOODAccumulator, pixel_ood_metrics)
    from mmseg_ood.utils import safe_checkpoint_loading

    out, _ = ood_run
    res = json.load(open(out / 'results.json'))['results']['synthetic_ood']
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    with safe_checkpoint_loading():
        model = init_model(STREET_CONFIG, _ckpt(trained_work_dir), 'cpu')
    root = osp.join(synthetic_root, 'street', 'ood')
    maps = {s: [] for s in SCORERS}
    labels = []
    for name in sorted(os.listdir(osp.join(root, 'images'))):
        scores = score_image(model, osp.join(root, 'images', name), SCORERS)
        for s in SCORERS:
            maps[s].append(scores[s])
        labels.append(cv2.imread(
            osp.join(root, 'labels_masks',
                     name[:-4] + '_labels_semantic.png'),
            cv2.IMREAD_UNCHANGED))
    y = np.concatenate([lab.ravel() for lab in labels])
    for s in SCORERS:
        stream = PixelOODAccumulator(name=s)
        for m, lab in zip(maps[s], labels):   # image by image, as the tool
            stream.update(m, lab)
        direct = stream.compute()
        for k in ('auroc', 'ap', 'fpr95', 'best_f1', 'best_f1_threshold'):
            assert res[s][k] == pytest.approx(direct[k]), (s, k)
        exact = pixel_ood_metrics(np.concatenate([m.ravel()
                                                  for m in maps[s]]), y)
        assert abs(res[s]['auroc'] - exact['auroc']) <= 1e-3, s
        comp = ComponentAccumulator(res[s]['component_threshold'],
                                    preset='obstacle_track')
        for m, lab in zip(maps[s], labels):
            comp.update(m, lab)
        c = comp.compute()
        for k in ('siou', 'ppv', 'mean_f1'):
            assert res[s][k] == pytest.approx(c[k], nan_ok=True), (s, k)


@pytest.fixture
def data_env(monkeypatch, synthetic_root):
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)


def test_checkpoint_config_mismatch_names_both(tmp_path, data_env,
                                               trained_work_dir):
    from mmseg_ood.apis import ood_test
    ckpt = _ckpt(trained_work_dir)
    with pytest.raises(ValueError) as info:
        ood_test(STREET_CONFIG, ckpt, str(tmp_path),
                 cfg_options={'model.decode_head.num_classes': 19})
    err = str(info.value)
    assert ckpt in err and STREET_CONFIG in err
    assert 'decode_head.conv_seg.weight' in err and 'num_classes' in err


def test_requested_unsupported_scorer_is_an_error(tmp_path, data_env,
                                                  trained_work_dir):
    from mmseg_ood.apis import ood_test
    with pytest.raises(ValueError,
                       match="'background' needs an IBE or SCrIBE head"):
        ood_test(STREET_CONFIG, _ckpt(trained_work_dir), str(tmp_path),
                 scorers=['msp', 'background'], id_eval=False,
                 cfg_options=dict(QUICK_CFG))
    assert not (tmp_path / 'results.json').exists()


def _snapshot(root):
    """Every file under ``root``: relative path -> bytes."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = osp.join(d, f)
            out[osp.relpath(p, root)] = open(p, 'rb').read()
    return out


def test_bad_input_leaves_the_previous_results_as_they_were(
        tmp_path, data_env, synthetic_root, trained_work_dir, monkeypatch):
    """Each bad input fails before the work dir is touched, with a message
    naming the argument, file or value; a run failing later keeps the
    previous complete results and leaves its partial ones beside them."""
    from mmseg_ood.apis import ood_test
    work = tmp_path / 'work'
    ckpt = _ckpt(trained_work_dir)

    def run(**kw):
        kw = dict(dict(scorers=['msp', 'energy'], id_eval=False,
                       cfg_options=dict(QUICK_CFG)), **kw)
        return ood_test(STREET_CONFIG, kw.pop('checkpoint', ckpt), str(work),
                        **kw)

    run()
    before = _snapshot(work)
    assert {'results.json', 'results.csv', 'results.md'} <= set(before)
    # a copy of the OOD images with one truncated to 0 bytes
    broken = tmp_path / 'broken'
    import shutil
    shutil.copytree(osp.join(synthetic_root, 'street', 'ood'), broken)
    images = sorted(glob.glob(str(broken / '**' / '*.png'), recursive=True))
    empty = [p for p in images if osp.sep + 'images' + osp.sep in p][0]
    open(empty, 'wb').close()
    preset = tmp_path / 'broken_ood.py'
    preset.write_text("ood_dataset = dict(type='SyntheticOODDataset', "
                      f"data_root={str(broken)!r})\n")
    monkeypatch.setenv('SMIYC_ROOT', str(tmp_path / 'nowhere'))
    cases = [
        (dict(scorers=['msp', 'energyy']), ValueError,
         "unknown scorer 'energyy'"),
        (dict(scorers=['msp', 'msp']), ValueError, r"\['msp'\] more than"),
        (dict(datasets=['synthetic_ood', 'road_anomaly21']),
         FileNotFoundError, "dataset 'road_anomaly21'.*nowhere"),
        (dict(datasets=['road_anomaly_2021']), ValueError, 'road_anomaly21'),
        (dict(datasets=[str(preset)]), ValueError,
         f'image file {empty!r} is empty'),
        (dict(tune=['eta', 'eta']), ValueError, r"\['eta'\] more than once"),
        (dict(tune_on='synthetic_ood'), ValueError, 'nothing to tune'),
        (dict(scorers=['msp'], tune=['temperature']), ValueError,
         r"nothing to tune among the scorers \['msp'\].*'energy'"),
        (dict(sml_fit_on='test'), ValueError, 'sml_fit_on'),
        (dict(scorers=['sml'], sml_stats='missing.json'), FileNotFoundError,
         'missing.json'),
        (dict(checkpoint=str(tmp_path / 'missing.pth')), FileNotFoundError,
         'missing.pth'),
        (dict(component_threshold='best-f2'), ValueError,
         "'best-f1', 'smiyc', a number, 'from:<dataset>' or 'tpr:<rate>'"),
        (dict(component_threshold='tpr:1.5'), ValueError, 'rate in'),
        (dict(component_threshold='from:road_anomaly_2021'), ValueError,
         'road_anomaly21'),
        (dict(export_smiyc=str(work / 'x'), export_transform='rankk'),
         ValueError, "`export_transform` must be one of"),
        (dict(per_image='yes'), TypeError, '`per_image` must be a bool'),
    ]
    for kw, err, match in cases:
        with pytest.raises(err, match=match):
            run(**kw)
        assert _snapshot(work) == before, kw
    # a failure in the middle of the run: the complete results stay
    from mmseg_ood.engine import EvaluationSession
    real = EvaluationSession.run_pass
    calls = []

    def second_pass_fails(self, *args, **kw):
        calls.append(kw.get('name'))
        if len(calls) == 2:
            raise RuntimeError('pass failed')
        return real(self, *args, **kw)

    monkeypatch.setattr(EvaluationSession, 'run_pass', second_pass_fails)
    with pytest.raises(RuntimeError, match='pass failed'):
        run(datasets=['synthetic_ood', 'synthetic_objects_ood'])
    after = _snapshot(work)
    for name in ('results.json', 'results.csv', 'results.md'):
        assert after[name] == before[name]
    partial = json.load(open(work / 'results.partial.json'))
    assert partial['complete'] is False
    assert list(partial['results']) == ['synthetic_ood']
    assert not [p for p in after if 'spill' in p]   # no spill left behind


def test_thresholds_from_another_dataset_and_unlisted_labels(
        tmp_path, data_env, synthetic_root, trained_work_dir):
    """``from:<dataset>``: the component metrics of every dataset use the
    source's best-F1 thresholds (the source evaluated first); a label value
    the value map does not list is voided, warned about once naming the
    file and value, and counted in results.json; an undecodable image is
    an error naming it."""
    import shutil

    from mmseg_ood.apis import ood_test
    from mmseg_ood.evaluation.accumulators.label_checks import (
                                                                UnlistedLabelValueWarning)
    copy = tmp_path / 'copy'
    shutil.copytree(osp.join(synthetic_root, 'street', 'ood'), copy)
    label = sorted(glob.glob(str(copy / 'labels_masks' / '*.png')))[1]
    raw = cv2.imread(label, cv2.IMREAD_UNCHANGED)
    raw[:4, :5] = 7
    cv2.imwrite(label, raw)
    preset = tmp_path / 'patched.py'
    preset.write_text("ood_dataset = dict(type='SyntheticOODDataset', "
                      f"data_root={str(copy)!r})\n")
    with pytest.warns(UnlistedLabelValueWarning) as record:
        payload = ood_test(
            STREET_CONFIG, _ckpt(trained_work_dir), str(tmp_path / 'work'),
            datasets=[str(preset)], scorers=['energy', 'msp'],
            component_threshold='from:synthetic_ood', id_eval=False,
            cfg_options=dict(QUICK_CFG))
    assert payload['datasets'] == ['synthetic_ood', 'patched']
    record = [w for w in record
              if issubclass(w.category, UnlistedLabelValueWarning)]
    message = str(record[0].message)
    assert len(record) == 1 and label in message and '7: 20 px' in message
    unlisted = payload['labels']['patched']['unlisted_values']
    assert unlisted['voided_pixels'] == 20 and unlisted['values'] == \
        {'7': 20}
    assert payload['labels']['synthetic_ood']['unlisted_values'][
        'voided_pixels'] == 0
    assert payload['component_threshold']['rule'] == 'from:synthetic_ood'
    source = payload['results']['synthetic_ood']
    for s in ('energy', 'msp'):
        used = payload['component_threshold']['thresholds']['patched'][s]
        assert used == dict(rule='fixed',
                            value=source[s]['best_f1_threshold'])
        assert payload['results']['patched'][s]['component_threshold'] == \
            source[s]['best_f1_threshold']
    # an undecodable (not empty) image: an error naming it
    image = sorted(glob.glob(str(copy / 'images' / '*.png')))[0]
    with open(image, 'wb') as f:
        f.write(b'not a png at all')
    with pytest.raises(ValueError, match=f'cannot decode the image.*{image}'):
        ood_test(STREET_CONFIG, _ckpt(trained_work_dir),
                 str(tmp_path / 'work2'), datasets=[str(preset)],
                 scorers=['energy'], id_eval=False,
                 cfg_options=dict(QUICK_CFG, **{
                     'test_dataloader.num_workers': 0}))


def test_export_includes_frames_without_labels(tmp_path, data_env,
                                              synthetic_root,
                                              trained_work_dir):
    """A submission needs every frame: frames without a label file are
    exported too (one more pass), the metrics cover the labelled ones, and
    the transform is fitted on all frames' pixels."""
    import shutil

    import h5py

    from mmseg_ood.apis import ood_test
    copy = tmp_path / 'copy'
    shutil.copytree(osp.join(synthetic_root, 'street', 'ood'), copy)
    label = sorted(glob.glob(str(copy / 'labels_masks' / '*.png')))[0]
    os.remove(label)
    preset = tmp_path / 'test_frames.py'
    preset.write_text("ood_dataset = dict(type='SyntheticOODDataset', "
                      f"data_root={str(copy)!r})\nsmiyc_name = 'Test-all'\n")
    export = tmp_path / 'smiyc'
    payload = ood_test(STREET_CONFIG, _ckpt(trained_work_dir),
                       str(tmp_path / 'work'), datasets=[str(preset)],
                       scorers=['energy'], export_smiyc=str(export),
                       id_eval=False, cfg_options=dict(QUICK_CFG))
    assert payload['export']['frames']['test_frames'] == dict(
        labelled=2, unlabelled=1)
    res = payload['results']['test_frames']['energy']
    files = sorted(glob.glob(str(export / 'anomaly_p' / 'energy' /
                                 'Test-all' / '*.hdf5')))
    assert [osp.basename(f) for f in files] == [
        '0000.hdf5', '0001.hdf5', '0002.hdf5']
    shape = h5py.File(files[0], 'r')['value'].shape
    record = json.load(open(export / 'anomaly_p' / 'energy' /
                            'Test-all.score_transform.json'))
    assert record['num_pixels'] == 3 * shape[0] * shape[1]
    assert res['num_id'] + res['num_ood'] < 2 * shape[0] * shape[1] + 1


def test_unknown_dataset_lists_presets():
    from mmseg_ood.datasets import load_dataset_preset
    with pytest.raises(ValueError, match='road_anomaly21'):
        load_dataset_preset('road_anomaly_2021')


def test_tuning_picks_the_known_best_point():
    """OOD pixels share the ID embeddings' direction but have small norms:
    only the raw logits separate them, so delta = 1 must win."""
    from mmseg_ood.engine.tuning import (best_of_grid, restrict_grid,
                                         tuning_scorers)
    from mmseg_ood.evaluation import PixelOODAccumulator
    from mmseg_ood.scorers import ScoreInputs, build_scorer
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 8, generator=g)
    z = torch.randn(1, 8, 40, 40, generator=g)
    z = z / z.norm(dim=1, keepdim=True)
    ood = torch.zeros(40, 40, dtype=torch.bool)
    ood[10:20, 10:20] = True
    z = z * torch.where(ood, 0.2, 3.0)             # OOD: small norm
    x = ScoreInputs(torch.einsum('cd,ndhw->nchw', w, z), z, w, None)
    grid = restrict_grid(tuning_scorers(), ['delta'])
    assert all(c.get('eta', 1.0) == 1.0 for c in grid.values())
    results = {}
    for name, cfg in grid.items():
        m = PixelOODAccumulator().update(build_scorer(cfg)(x)[0],
                                        ood.to(torch.uint8))
        results[name] = m.compute()
    best = best_of_grid(results, grid)
    assert best['n_max_logit']['params']['delta'] == 1.0
    assert best['n_energy']['params']['delta'] == 1.0
    assert best['n_max_logit']['ap'] > results[
        'n_max_logit[eta=1,delta=0]']['ap']


def test_tune_runs_one_grid_pass(tmp_path, data_env, trained_work_dir):
    from mmseg_ood.apis import ood_test
    ood_test(STREET_CONFIG, _ckpt(trained_work_dir), str(tmp_path),
             tune=['temperature'], id_eval=False,
             cfg_options=dict(QUICK_CFG))
    res = json.load(open(tmp_path / 'results.json'))
    tuning = res['tuning']
    assert tuning['dataset'] == 'synthetic_ood'
    assert set(tuning['best']) == {'energy', 'n_energy'}
    assert len(tuning['grid']) == 8   # 4 temperatures x 2 scorers
    assert 'energy*' in res['results']['synthetic_ood']
    # a small grid is scored at the evaluation's resolution: the grid's
    # default point has the evaluated default scorer's numbers
    assert tuning['bits'] == 20
    default = res['results']['synthetic_ood']['energy']
    point = tuning['grid']['energy[T=1]']
    for key in ('ap', 'auroc', 'fpr95'):
        assert point[key] == pytest.approx(default[key], abs=1e-12)


def test_results_json_is_strict_json(tmp_path):
    """Undefined metrics are null, not a bare NaN (which JSON.parse and
    strict Python parsers reject)."""
    from mmseg_ood.reports.results import write_results
    nan = float('nan')
    payload = dict(complete=True, id_miou={}, tuning=None, results=dict(
        ds=dict(msp=dict(auroc=0.9, ap=nan, fpr95=float('inf'),
                         best_f1_threshold=np.float32(0.5).item()))))
    paths = write_results(str(tmp_path), payload)

    def refuse(constant):
        raise ValueError(f'not JSON: {constant}')
    data = json.loads(open(paths['json']).read(), parse_constant=refuse)
    assert data['results']['ds']['msp'] == dict(
        auroc=0.9, ap=None, fpr95=None, best_f1_threshold=0.5)
    row = open(paths['csv']).read().splitlines()[1].split(',')
    assert row[:5] == ['ds', 'msp', '0.9', '', '']
    assert '| msp | 90.00 | n/a | n/a |' in open(paths['md']).read()


def test_tta_reports_the_id_miou_with_tta(tmp_path, data_env,
                                          trained_work_dir):
    """--tta evaluates the config's own test set with TTA too (the pass
    ood_test runs for the ID mIoU), as tools/test.py --tta does."""
    from mmseg_ood.apis import test
    from mmseg_ood.engine import EvaluationSession
    ckpt = _ckpt(trained_work_dir)
    with EvaluationSession(STREET_CONFIG, ckpt, str(tmp_path / 'ood'),
                           dict(QUICK_CFG), tta=True) as session:
        ours = session.run_pass(name='id_test_set', metrics=[
            dict(type='IoUMetric', iou_metrics=['mIoU'])]).metrics
    plain = test(STREET_CONFIG, ckpt, str(tmp_path / 'test'), tta=True,
                 cfg_options=dict(QUICK_CFG))
    assert ours['mIoU'] == pytest.approx(plain['mIoU'])


def test_tuning_flags_are_checked_before_anything_runs(tmp_path):
    """Refused before the config or checkpoint is even read."""
    from mmseg_ood.apis import ood_test
    with pytest.raises(ValueError, match=r"names \['eta'\] more than once"):
        ood_test(STREET_CONFIG, 'no.pth', str(tmp_path), tune=['eta', 'eta'])
    with pytest.raises(ValueError, match="`tune_on` .*nothing to tune"):
        ood_test(STREET_CONFIG, 'no.pth', str(tmp_path), tune_on='x')
    with pytest.raises(ValueError, match="takes .*got \\['eta2'\\]"):
        ood_test(STREET_CONFIG, 'no.pth', str(tmp_path), tune=['eta2'])
    assert not list(tmp_path.iterdir())
