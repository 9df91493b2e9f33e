"""tools/robustness_test.py: several models on the same corrupted images,
resumable, distributed like one process."""
import json
import os.path as osp

import pytest

from conftest import ONE_THREAD_ENV, QUICK_OPTIONS, STREET_CONFIG, run_tool


def _ckpt(work_dir):
    return open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def _args(ckpt, work, *extra):
    return [STREET_CONFIG, ckpt, STREET_CONFIG, ckpt, '--names', 'a', 'b',
            '--work-dir', work, '--corruptions', 'fog', 'glass_blur',
            '--severities', '2', *extra, '--cfg-options',
            *QUICK_OPTIONS]


@pytest.fixture(scope='module')
def robustness_run(tmp_path_factory, trained_work_dir, synthetic_root):
    # on one thread, as the resumed run whose cells are compared with ==
    # (the forward pass differs in its last bits across thread counts)
    work = str(tmp_path_factory.mktemp('robust'))
    cache = osp.join(work, 'cache')
    proc = run_tool('robustness_test.py',
                    *_args(_ckpt(trained_work_dir), work, '--cache-dir',
                           cache, '--ood-datasets', 'synthetic_ood'),
                    env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    return work, cache, proc


def test_tables_figures_and_cells(robustness_run):
    work, cache, proc = robustness_run
    for name in ('robustness.json', 'robustness.csv', 'robustness.md',
                 'fig5_severity.png', 'fig6_examples.png'):
        assert osp.getsize(osp.join(work, name)) > 0, name
    assert not osp.exists(osp.join(work, 'robustness.partial.json'))
    payload = json.load(open(osp.join(work, 'robustness.json')))
    assert payload['complete']
    cells = payload['cells']
    # clean + 2 corruptions x 1 severity, for each model
    assert len(cells) == 2 * 3
    for key, cell in cells.items():
        assert 0 <= cell['miou'] <= 1 and 0 <= cell['ece'] <= 1, key
        assert set(cell['ood']) == {'synthetic_ood'}
    # the same weights under two names: every number is the same
    for key, cell in cells.items():
        if key.startswith('a|'):
            assert cells['b|' + key[2:]] == cell
    summary = payload['summary']['a']
    per = summary['per_severity']
    assert per['2']['miou'] == pytest.approx(
        (cells['a|fog|2|ss']['miou'] + cells['a|glass_blur|2|ss']['miou'])
        / 2)
    assert summary['relative_robustness'] == pytest.approx(
        summary['corrupted_miou'] / summary['clean_miou'])
    md = open(osp.join(work, 'robustness.md')).read()
    assert '| a | 2 |' in md and 'relative (corrupted / clean)' in md
    assert proc.stdout.count('[robustness_test] cell ') == 6


def _hand_corrupted(img_path, corruption, severity, seed=0):
    """``img_path`` as cv2 loads it (BGR), corrupted with the toolkit
    directly: NumPy's global generator seeded with the first 4 bytes (little
    endian) of sha256 of ``'<normalized path>|<corruption>|<severity>|
    <seed>'``, the corruption applied to the RGB image."""
    import hashlib

    import cv2
    import numpy as np
    from imagecorruptions import corrupt
    key = f'{osp.normpath(img_path)}|{corruption}|{severity}|{seed}'
    np.random.seed(int.from_bytes(hashlib.sha256(key.encode()).digest()[:4],
                                  'little'))
    rgb = np.ascontiguousarray(cv2.imread(img_path)[..., ::-1])
    return np.ascontiguousarray(
        corrupt(rgb, severity=severity, corruption_name=corruption)[..., ::-1])


def test_a_corrupted_cell_equals_a_hand_computation(
        robustness_run, trained_work_dir, synthetic_root, single_thread):
    """The cell ``a|fog|2``: the test images (the street val split)
    corrupted here with ``imagecorruptions`` itself, the model's
    predictions on them, and mIoU / ECE computed with numpy."""
    import glob
    import hashlib

    import cv2
    import numpy as np
    import torch
    from PIL import Image

    from mmseg.apis import inference_model
    from mmseg_ood.apis import init_model
    work, cache, _ = robustness_run
    cell = json.load(open(osp.join(work, 'robustness.json')))['cells'][
        'a|fog|2|ss']
    # the paths as the dataset lists them (data_root + data_prefix + name):
    # they seed the corruption
    root = osp.join(synthetic_root, 'street')
    images = sorted(glob.glob(osp.join(root, 'images', 'val', '*.png')))
    assert len(images) == 2
    model = init_model(STREET_CONFIG, _ckpt(trained_work_dir))
    num_classes = len(model.dataset_meta['classes'])
    inter, union = np.zeros(num_classes), np.zeros(num_classes)
    gap = np.zeros(15)                 # per ECE bin: sum(correct - conf)
    pixels = 0
    for path in images:
        img = _hand_corrupted(path, 'fog', 2)
        # the tool's corrupted pixels are these (its cache holds them)
        key = hashlib.sha256(osp.normpath(path).encode()).hexdigest()[:16]
        cached = cv2.imread(osp.join(
            cache, 'fog', '2', '0',
            f'{key}_{osp.splitext(osp.basename(path))[0]}.png'))
        np.testing.assert_array_equal(cached, img)
        assert not np.array_equal(img, cv2.imread(path))
        with torch.no_grad():
            result = inference_model(model, img)
        label = np.asarray(Image.open(
            osp.join(root, 'annotations', 'val', osp.basename(path))))
        pred = result.pred_sem_seg.data[0].numpy()
        probs = torch.softmax(result.seg_logits.data.float(), 0).numpy()
        assert pred.shape == label.shape == probs.shape[1:]
        valid = label != 255
        p, y = pred[valid], label[valid]
        for k in range(num_classes):
            inter[k] += np.sum((p == k) & (y == k))
            union[k] += np.sum((p == k) | (y == k))
        conf = probs.max(0)[valid].astype(np.float64)
        correct = (probs.argmax(0)[valid] == y).astype(np.float64)
        bins = np.minimum((conf * 15).astype(int), 14)
        np.add.at(gap, bins, correct - conf)
        pixels += int(valid.sum())
    with np.errstate(invalid='ignore'):
        miou = np.nanmean(inter / union)
    # mmseg's IoUMetric reports percent rounded to 2 decimals (a float32);
    # the cells divide it by 100: equal up to the float32 of the percent,
    # far below one rounding step (1e-4)
    assert cell['miou'] == pytest.approx(round(100 * miou, 2) / 100,
                                         abs=1e-8)
    assert cell['ece'] == pytest.approx(np.abs(gap).sum() / pixels,
                                        abs=1e-6)


def test_each_image_is_corrupted_once_and_cached(robustness_run,
                                                 synthetic_root):
    import glob
    _, cache, _ = robustness_run
    # 2 test images (the street val split) and 3 OOD images, per corrupted
    # cell, whatever the number of models
    for corruption in ('fog', 'glass_blur'):
        files = glob.glob(osp.join(cache, corruption, '2', '0', '*.png'))
        assert len(files) == 2 + 3, (corruption, files)


def test_a_resumed_run_gives_the_same_tables(robustness_run, tmp_path,
                                             trained_work_dir,
                                             synthetic_root):
    """Interrupted after some cells (the partial file is all that is
    left), the rerun computes only the rest and writes the same table."""
    work, cache, _ = robustness_run
    full = json.load(open(osp.join(work, 'robustness.json')))
    resumed = str(tmp_path / 'resumed')
    import os
    os.makedirs(resumed)
    keep = {k: v for k, v in full['cells'].items()
            if not k.startswith('b|glass_blur')}
    with open(osp.join(resumed, 'robustness.partial.json'), 'w') as f:
        json.dump(dict(schema=full['schema'], complete=False,
                       settings=full['settings'], cells=keep), f)
    proc = run_tool('robustness_test.py',
                    *_args(_ckpt(trained_work_dir), resumed, '--cache-dir',
                           cache, '--ood-datasets', 'synthetic_ood'),
                    env={'MMSEG_OOD_DATA': synthetic_root, **ONE_THREAD_ENV})
    assert proc.stdout.count('[robustness_test] cell ') == 1
    again = json.load(open(osp.join(resumed, 'robustness.json')))
    assert again['cells'] == full['cells']
    assert again['summary'] == full['summary']


def test_a_partial_file_of_another_schema_is_not_resumed(tmp_path, capsys):
    """Cells of results schema 1 held another non-distinctiveness (the full
    softmax's largest foreground entry, not IBE eq. 4): never mixed in, and
    set aside rather than overwritten."""
    import os
    from mmseg_ood.apis.robustness_test import RESULTS_SCHEMA, load_partial
    path = str(tmp_path / 'robustness.partial.json')
    cells = {'a|clean|0|ss': dict(miou=0.5, ece=0.1,
                                  non_distinctiveness=0.01)}
    settings = dict(seed=0, corruptions=['fog'], severities=[2], msc=False,
                    ood_datasets=[])
    for schema, expected in ((None, {}), (1, {}), (RESULTS_SCHEMA, cells)):
        payload = dict(complete=False, settings=settings, cells=cells)
        if schema is not None:
            payload['schema'] = schema
        with open(path, 'w') as f:
            json.dump(payload, f)
        assert load_partial(path, settings) == expected
    out = capsys.readouterr().out
    assert out.count('has results schema 1') == 2
    assert 'IBE eq. 4' in out
    assert sorted(os.listdir(tmp_path)) == [
        'robustness.partial.json', 'robustness.partial.json.schema1',
        'robustness.partial.json.schema1.2']


def test_a_failing_run_writes_no_tables(
        tmp_path, trained_work_dir, synthetic_root):
    """Bad input found before the first cell (a missing OOD data root)
    leaves no result file."""
    work = str(tmp_path / 'broken')
    proc = run_tool('robustness_test.py',
                    *_args(_ckpt(trained_work_dir), work, '--ood-datasets',
                           'road_anomaly21'),
                    env={'MMSEG_OOD_DATA': synthetic_root,
                         'SMIYC_ROOT': str(tmp_path / 'nowhere')},
                    check=False)
    assert proc.returncode != 0
    assert not osp.exists(osp.join(work, 'robustness.json'))
    assert 'nowhere' in proc.stderr


def test_bad_arguments(tmp_path, capsys):
    """Each a one-line error and exit status 2 (in-process: the tool's
    main, as its script runs it)."""
    from mmseg_ood.tools.robustness_test import main
    for args, message in (
            (['a.py', '--work-dir', str(tmp_path)], 'CONFIG CHECKPOINT pairs'),
            ([STREET_CONFIG, 'missing.pth', '--work-dir', str(tmp_path)],
             "no checkpoint file 'missing.pth'"),
            ([STREET_CONFIG, STREET_CONFIG, '--work-dir', str(tmp_path),
              '--corruptions', 'rain'], "unknown corruptions ['rain']"),
            ([STREET_CONFIG, STREET_CONFIG, '--work-dir', str(tmp_path),
              '--severities', '7'], '`severities` must be distinct ints'),
            ([STREET_CONFIG, STREET_CONFIG, STREET_CONFIG, STREET_CONFIG,
              '--work-dir', str(tmp_path), '--names', 'x', 'x'],
             'model names must be unique')):
        with pytest.raises(SystemExit) as e:
            main(args)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err, err
        assert 'Traceback' not in err
