"""Proposal re-ranking by the SegNet paper's eq. 17, its candidate sets, the
mIoU of the picks, and the tool."""
import json
import os.path as osp

import numpy as np
import pytest

from conftest import QUICK_OPTIONS, STREET_CONFIG, run_tool


def _kl(a, b):
    return float(np.sum(a * np.log(a / b)))


def test_eq17_hand_worked_two_candidates():
    """A 2x2 image, 2 classes, one cell (grid 1): the network says class 1
    with 0.8 everywhere. Candidate A labels everything 1, candidate B
    three pixels 0 and one pixel 1. By hand (eps smoothing of both):
    S(A) = KL(p||qA) + KL(qA||p) + 0.02 * 0, S(B) likewise with qB =
    (3/4, 1/4) and the penalty 0.02 * 3/4. A is picked."""
    from mmseg_ood.evaluation.functional.proposal_reranking import (
                                                                    reranking_scores)
    eps = 1e-3
    prob = np.zeros((2, 2, 2))
    prob[0], prob[1] = 0.2, 0.8
    a = np.ones((2, 2), int)
    b = np.array([[0, 0], [0, 1]])
    s = reranking_scores(prob, [a, b], grid=1, eps=eps)

    def smooth(d):
        return (1 - eps) * np.asarray(d) + eps / 2
    p = smooth([0.2, 0.8])
    qa, qb = smooth([0.0, 1.0]), smooth([0.75, 0.25])
    expected = [_kl(p, qa) + _kl(qa, p),
                _kl(p, qb) + _kl(qb, p) + 0.02 * 0.75]
    np.testing.assert_allclose(s, expected, rtol=1e-12)
    assert np.argmin(s) == 0


def test_background_penalty_breaks_a_tie():
    """A network with no opinion (1/2, 1/2): all-background and
    all-foreground are equally far; the penalty picks foreground, and
    without it the scores tie."""
    from mmseg_ood.evaluation.functional.proposal_reranking import (
                                                                    reranking_scores)
    prob = np.full((2, 4, 4), 0.5)
    bg, fg = np.zeros((4, 4), int), np.ones((4, 4), int)
    s = reranking_scores(prob, [bg, fg], grid=2)
    assert s[0] - s[1] == pytest.approx(0.02 * 4)  # 4 cells of background
    s = reranking_scores(prob, [bg, fg], grid=2, background_index=None)
    assert s[0] == pytest.approx(s[1])


def test_soft_segmentation_equals_a_loop_over_cells():
    """Cells of uneven size (a 5x7 image on a 2x3 grid): each cell's class
    shares, against an explicit loop with the same edges."""
    from mmseg_ood.evaluation.functional.proposal_reranking import (
                                                                    soft_segmentation)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (5, 7))
    got = soft_segmentation(labels, 3, grid=(2, 3))
    ys = np.linspace(0, 5, 3).round().astype(int)
    xs = np.linspace(0, 7, 4).round().astype(int)
    for i in range(2):
        for j in range(3):
            cell = labels[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
            np.testing.assert_allclose(
                got[i, j], np.bincount(cell.ravel(), minlength=3) /
                cell.size)
    np.testing.assert_allclose(got.sum(-1), 1)


def test_scoring_errors_are_named():
    from mmseg_ood.evaluation.functional.proposal_reranking import (
                                                                    reranking_scores,
                                                                    soft_segmentation)
    prob = np.full((2, 4, 4), 0.5)
    with pytest.raises(ValueError, match='no candidates'):
        reranking_scores(prob, [])
    with pytest.raises(ValueError, match='a candidate of shape'):
        reranking_scores(prob, [np.zeros((3, 4), int)], grid=2)
    with pytest.raises(ValueError, match='finer than the image'):
        reranking_scores(prob, [np.zeros((4, 4), int)], grid=13)
    with pytest.raises(ValueError, match='`eps` must be in'):
        reranking_scores(prob, [np.zeros((4, 4), int)], grid=2, eps=0)
    with pytest.raises(ValueError, match='`background_index`'):
        reranking_scores(prob, [np.zeros((4, 4), int)], grid=2,
                         background_index=2)
    with pytest.raises(ValueError, match=r'must lie in \[0, 2\)'):
        soft_segmentation(np.full((4, 4), 2), 2, grid=2)


def test_segment_flip_candidates_flip_the_least_certain_segments_first():
    """Background with two objects: object 1 (class 1, runner-up 2,
    margin 0.1) and object 2 (class 2, runner-up 0, margin 0.5). The
    candidates: the argmax, object 1 relabelled 2, object 2 merged into
    the background, both."""
    from mmseg_ood.evaluation.functional.proposal_reranking import (
                                                                    segment_flip_candidates)
    prob = np.zeros((3, 8, 8))
    prob[0] = 0.9
    prob[1] = prob[2] = 0.05
    prob[:, 1:3, 1:3] = np.array([0.1, 0.5, 0.4])[:, None, None]
    prob[:, 5:7, 5:7] = np.array([0.2, 0.1, 0.7])[:, None, None]
    c = segment_flip_candidates(prob, num_candidates=10)
    y = prob.argmax(0)
    np.testing.assert_array_equal(c[0], y)
    one = y.copy()
    one[1:3, 1:3] = 2
    two = y.copy()
    two[5:7, 5:7] = 0
    both = one.copy()
    both[5:7, 5:7] = 0
    # the background segment (margin 0.85, runner-up 1) comes last
    for got, want in zip(c[1:4], [one, two, both]):
        np.testing.assert_array_equal(got, want)
    assert len({x.tobytes() for x in c}) == len(c)  # all distinct
    assert len(segment_flip_candidates(prob, num_candidates=2)) == 2
    with pytest.raises(ValueError, match='num_candidates'):
        segment_flip_candidates(prob, num_candidates=0)


def test_confusion_accumulator_equals_mmseg_iou_metric():
    import torch
    from mmseg.evaluation import IoUMetric

    from mmseg_ood.evaluation.functional.proposal_reranking import (
                                                                    ConfusionAccumulator)
    rng = np.random.default_rng(1)
    acc = ConfusionAccumulator(4)
    areas = []
    for _ in range(3):
        label = rng.integers(0, 4, (6, 7))
        label[0, :3] = 255
        label[label == 3] = 1  # class 3 never labelled, sometimes predicted
        pred = rng.integers(0, 4, (6, 7))
        acc.update(pred, label)
        areas.append(IoUMetric.intersect_and_union(
            torch.from_numpy(pred), torch.from_numpy(label), 4, 255))
    total = [sum(a[i] for a in areas) for i in range(4)]
    iou = np.asarray(
        IoUMetric.total_area_to_metrics(*total, ['mIoU'])['IoU'])
    np.testing.assert_allclose(acc.iou(), 100 * iou, equal_nan=True)
    assert acc.miou() == pytest.approx(100 * np.nanmean(iou))


def test_image_miou_hand_worked():
    from mmseg_ood.evaluation.functional.proposal_reranking import image_miou
    label = np.array([[0, 0, 1, 255]])
    pred = np.array([[0, 1, 1, 2]])
    # class 0: 1/2, class 1: 1/2; class 2 only on a void pixel: left out
    assert image_miou(pred, label, 3) == pytest.approx(0.5)


@pytest.mark.slow  # trains: opt-in (--run-slow), the suite stays < 20 min
def test_tool_end_to_end(tmp_path, synthetic_root, trained_work_dir):
    """Two names for one checkpoint give the same numbers; the oracle is
    at least the 1-best; the files are written; errors are one line."""
    ckpt = open(osp.join(trained_work_dir, 'last_checkpoint')).read().strip()
    work = tmp_path / 'rr'
    proc = run_tool('rerank_proposals.py', STREET_CONFIG, '--checkpoints',
                    f'a={ckpt}', f'b={ckpt}', '--proposals', ckpt,
                    '--num-candidates', '8', '--grid', '16',
                    '--work-dir', str(work), '--cfg-options',
                    *QUICK_OPTIONS, env={'MMSEG_OOD_DATA': synthetic_root})
    assert '| a |' in proc.stdout and 'oracle' in proc.stdout
    res = json.load(open(work / 'reranking.json'))
    a, b = res['networks']['a'], res['networks']['b']
    assert a['reranked_miou'] == b['reranked_miou']
    assert a['argmax_miou'] == b['argmax_miou']
    p = res['proposals']
    assert p['oracle_miou'] >= p['first_miou'] - 1e-9
    # the proposal model's argmax is the first candidate: its own mIoU
    assert p['first_miou'] == pytest.approx(a['argmax_miou'])
    assert 1 <= p['mean_candidates'] <= 8 and res['settings']['images'] == 2
    assert (work / 'reranking.md').read_text().startswith('Re-ranking')
    bad = run_tool('rerank_proposals.py', STREET_CONFIG, '--checkpoints',
                   f'a={tmp_path}/missing.pth', '--proposals', ckpt,
                   '--work-dir', str(work), check=False,
                   env={'MMSEG_OOD_DATA': synthetic_root})
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"rerank_proposals: error: checkpoint of 'a' not found: "
        f'{tmp_path}/missing.pth']
    bad = run_tool('rerank_proposals.py', STREET_CONFIG, '--checkpoints',
                   'nameless', '--proposals', ckpt, '--work-dir', str(work),
                   check=False)
    assert bad.returncode == 2 and 'expected NAME=CHECKPOINT' in bad.stderr


def test_api_refuses_bad_requests_before_loading():
    from mmseg_ood.apis import rerank_proposals
    with pytest.raises(ValueError, match='no networks'):
        rerank_proposals(STREET_CONFIG, {}, 'p.pth')
    with pytest.raises(ValueError, match='`num_candidates` must be >= 2'):
        rerank_proposals(STREET_CONFIG, {'a': 'a.pth'}, 'p.pth',
                         num_candidates=1)
    with pytest.raises(ValueError, match='`max_images` must be >= 1'):
        rerank_proposals(STREET_CONFIG, {'a': 'a.pth'}, 'p.pth',
                         max_images=0)
    with pytest.raises(FileNotFoundError, match="checkpoint of 'proposal'"):
        rerank_proposals(STREET_CONFIG, {'a': 'a.pth'}, 'missing.pth')
