"""PerClassIoUMetric and the training curves read from mmengine's
scalars.json."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

from conftest import QUICK_OPTIONS, STREET_CONFIG, run_tool


def test_per_class_iou_hand_worked():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from mmseg_ood.evaluation import PerClassIoUMetric
    m = PerClassIoUMetric(iou_metrics=['mIoU'])
    m.dataset_meta = dict(classes=('a', 'b', 'c'))
    gt = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 1]])
    sample = SegDataSample(pred_sem_seg=PixelData(data=pred[None]),
                           gt_sem_seg=PixelData(data=gt[None]))
    m.process(None, [sample.to_dict()])
    out = m.evaluate(1)
    # a: 1 / 3, b: 3 / 4, c: 2 / 3
    assert out['IoU.a'] == 33.33 and out['IoU.b'] == 75.0
    assert out['IoU.c'] == 66.67
    assert out['mIoU'] == pytest.approx(np.mean([33.33, 75.0, 66.67]),
                                        abs=0.01)
    with pytest.raises(ValueError, match="must include 'mIoU'"):
        PerClassIoUMetric(iou_metrics=['mDice'])


@pytest.mark.slow  # trains: opt-in (--run-slow), the suite stays < 20 min
def test_curves_from_a_training_run(tmp_path, synthetic_root):
    """Two validations of a 4-iteration run: the per-class IoU is in
    scalars.json, and the tool tables and plots it."""
    work = str(tmp_path / 'run')
    run_tool('train.py', STREET_CONFIG, '--work-dir', work, '--cfg-options',
             *QUICK_OPTIONS, 'train_cfg.max_iters=4',
             'train_cfg.val_interval=2',
             'val_evaluator.type=PerClassIoUMetric',
             env={'MMSEG_OOD_DATA': synthetic_root})
    from mmseg_ood.reports.training_log import read_scalars
    data = read_scalars(work)
    assert [r['step'] for r in data['val']] == [2, 4]
    classes = ('road', 'sidewalk', 'building', 'vegetation', 'sky',
               'vehicle')
    for row in data['val']:
        ious = [row[f'IoU.{c}'] for c in classes]
        present = [v for v in ious if v == v]
        assert row['mIoU'] == pytest.approx(np.mean(present), abs=0.01)
    out = tmp_path / 'curves'
    proc = run_tool('training_curves.py', work, work, '--names', 'a', 'b',
                    '--out', str(out))
    assert 'training_curves.png' in proc.stdout
    md = (out / 'training_curves.md').read_text()
    assert md.count('| iter | loss | road |') == 2 and '**b**' in md
    assert osp.getsize(out / 'training_curves.png') > 1000


def test_bad_scalars_are_named(tmp_path):
    from mmseg_ood.reports.training_log import read_scalars
    with pytest.raises(FileNotFoundError, match='no \\*/vis_data'):
        read_scalars(str(tmp_path))
    d = tmp_path / '20260101_000000' / 'vis_data'
    d.mkdir(parents=True)
    (d / 'scalars.json').write_text(json.dumps({'loss': 1, 'step': 1}) +
                                    '\n{broken\n' +
                                    json.dumps({'loss': 1, 'step': 2}))
    with pytest.raises(ValueError, match='scalars.json line 2 is not JSON'):
        read_scalars(str(tmp_path))
    bad = run_tool('training_curves.py', str(tmp_path), str(tmp_path),
                   '--names', 'one', '--out', str(tmp_path / 'o'),
                   check=False)
    assert bad.returncode == 2 and '--names gives 1 names' in bad.stderr
