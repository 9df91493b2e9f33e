"""Maskomaly: the score on a hand-computed case, the per-query statistics
its query selection ranks by (against sklearn), and the selection file."""
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from mmseg_ood.engine.query_selection import QueryStatistics
from mmseg_ood.errors import DamagedFileError
from mmseg_ood.scorers import ScoreInputs, build_scorer
from mmseg_ood.scorers.mask_classification.maskomaly import (
    Maskomaly, QuerySelection)


def hand_case():
    """Three queries over two known classes and "no object", three pixels.

    q0: p = (0.8, 0.1 | 0.1), known class 0 at 0.8 > 0.7: it rejects;
    q1: p = (0.2, 0.2 | 0.6), "no object": the selected anomaly query;
    q2: p = (0.1, 0.6 | 0.3), known class 1 at 0.6: not confident enough to
    reject, but a known-class mask for the border removal.
    """
    p = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6], [0.1, 0.6, 0.3]])
    query_logits = p.log().unsqueeze(0)  # softmax gives p back
    masks = torch.tensor([[0.5, 0.05, 0.9],     # q0
                          [0.25, 0.5, 0.1],     # q1
                          [0.05, 0.2, 0.5]])    # q2
    mask_probs = masks.view(1, 3, 1, 3)
    f = torch.einsum('qk,qhw->khw', p[:, :2], masks.view(3, 1, 3))
    return ScoreInputs(f.unsqueeze(0), head_kind='mask',
                       query_logits=query_logits, mask_probs=mask_probs)


# pixel 0: A = 0.6 * 0.25 = 0.15, R = 1 - 0.8 * 0.5 = 0.6, one known mask
#          > 0.1 (q0): S = 0.6 * 0.6 + 0.4 * 0.15 = 0.42
# pixel 1: A = 0.6 * 0.5 = 0.3, R = 1 - 0.8 * 0.05 = 0.96, one (q2):
#          S = 0.6 * 0.96 + 0.4 * 0.3 = 0.696
# pixel 2: A = 0.6 * 0.1 = 0.06, R = 1 - 0.8 * 0.9 = 0.28, but q0 and q2
#          both > 0.1 (a border): R = 0, S = 0.4 * 0.06 = 0.024;
#          without border removal 0.6 * 0.28 + 0.024 = 0.192
@pytest.mark.parametrize('kwargs,expected', [
    (dict(), [0.42, 0.696, 0.024]),
    (dict(remove_borders=False), [0.42, 0.696, 0.192]),
    (dict(rejection_weight=0.0), [0.15, 0.3, 0.06]),     # A alone
    (dict(rejection_weight=1.0), [0.6, 0.96, 0.0]),      # R alone
    # q0 (0.8) is no longer confident enough: R = 1 where no border
    (dict(confidence=0.85), [0.66, 0.72, 0.024]),
])
def test_score_equals_the_hand_computation(kwargs, expected):
    scorer = build_scorer(dict(type='maskomaly', queries=[1], **kwargs))
    out = scorer(hand_case())
    assert out.shape == (1, 1, 3) and out.dtype == torch.float32
    np.testing.assert_allclose(out.view(-1).numpy(), expected, atol=1e-6)


def test_the_most_anomalous_pixel_is_where_no_known_class_claims_it():
    out = build_scorer(dict(type='maskomaly', queries=[1]))(hand_case())
    assert out.view(-1).argmax().item() == 1


def test_several_selected_queries_take_the_max():
    # queries 1 and 2: A = max(0.6 * m1, 0.6 * m2) = (0.15, 0.3, 0.3)
    scorer = build_scorer(dict(type='maskomaly', queries=[1, 2],
                               rejection_weight=0.0))
    np.testing.assert_allclose(scorer(hand_case()).view(-1).numpy(),
                               [0.15, 0.3, 0.3], atol=1e-6)


def test_per_pixel_inputs_without_space():
    x = hand_case()
    flat = ScoreInputs(x.logits[0].permute(1, 2, 0).reshape(3, 2),
                       head_kind='mask',
                       query_logits=x.query_logits.expand(3, 3, 3),
                       mask_probs=x.mask_probs[0].permute(1, 2, 0).reshape(
                           3, 3))
    out = build_scorer(dict(type='maskomaly', queries=[1]))(flat)
    assert out.shape == (3, )
    np.testing.assert_allclose(out.numpy(), [0.42, 0.696, 0.024], atol=1e-6)


def test_without_a_selection_it_says_how_to_fit_one():
    scorer = build_scorer('maskomaly')
    with pytest.raises(ValueError, match=r"scorer 'maskomaly' has no query "
                       r'selection: .*--scorers maskomaly --tune-on DATASET'
                       r'.*queries_file=FILE'):
        scorer(hand_case())


def test_it_needs_a_mask_classification_head():
    reason = Maskomaly().unsupported_reason(True, 'softmax')
    assert "'maskomaly' needs a mask-classification head" in reason


@pytest.mark.parametrize('kwargs,match', [
    (dict(top_k=0), '`top_k` must be an int >= 1, got 0'),
    (dict(top_k=1.5), '`top_k` must be an int >= 1, got float'),
    (dict(select_by='auroc'), r"`select_by` must be one of \('iou', 'ap'\)"),
    (dict(rejection_weight=1.5), r'`rejection_weight` must be in \[0, 1\]'),
    (dict(confidence=1.0), r'`confidence` must be in \[0, 1\)'),
    (dict(border_threshold=-0.1), '`border_threshold` must be >= 0.0'),
    (dict(remove_borders='yes'), '`remove_borders` must be a bool'),
    (dict(queries=[1, 1]), 'names a query twice'),
    (dict(queries=[-1]), r'`queries` must hold ints >= 0'),
    (dict(queries='1'), '`queries` must be a non-empty list'),
    (dict(queries=[1], queries_file='x.json'), 'not both'),
    (dict(queries_file='/nowhere/q.json'), '/nowhere/q.json not found'),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError, FileNotFoundError),
                       match=match):
        build_scorer(dict(type='maskomaly', **kwargs))


def test_queries_out_of_range_are_refused_when_scoring():
    with pytest.raises(ValueError, match=r'selected queries \[5\] are out of '
                       'range for a model with 3 queries'):
        build_scorer(dict(type='maskomaly', queries=[5]))(hand_case())


# ---------------------------------------------------------------------------
# the per-query statistics the selection ranks by

def _reference_images(seed=0, q=4, shape=(6, 7), n=3):
    """Mask probabilities on a grid of 20 levels (ties across pixels and
    queries, as saturated masks give; levels far apart next to the
    histogram's bins) and labels with void pixels."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        labels = (rng.random(shape) < 0.3).astype(np.uint8)
        labels[rng.random(shape) < 0.1] = 255
        masks = rng.integers(0, 20, (q, ) + shape) / 20.0
        # query 1 responds to the OOD pixels, query 3 a little
        masks[1][labels == 1] = np.maximum(masks[1][labels == 1], 0.95)
        masks[3][labels == 1] = np.maximum(masks[3][labels == 1], 0.5)
        images.append((masks.astype(np.float32), labels))
    return images


def test_per_query_ap_equals_sklearn_and_ranks_as_it():
    images = _reference_images()
    stats = QueryStatistics(4)
    for masks, labels in images:  # streamed, one image at a time
        stats.update(masks, labels)
    got = stats.compute()
    y = np.concatenate([lab.reshape(-1) for _, lab in images])
    valid = y != 255
    expected = [average_precision_score(
        y[valid], np.concatenate([m[q].reshape(-1) for m, _ in images])[
            valid]) for q in range(4)]
    np.testing.assert_allclose(got['ap'], expected, rtol=1e-12)
    selection = QuerySelection(4, iou=got['iou'], ap=got['ap'])
    assert selection.ranking('ap') == list(np.argsort(-np.array(expected),
                                                      kind='stable'))
    assert selection.ranking('ap')[:2] == [1, 3]
    assert selection.top(1, 'ap') == [1]


def test_per_query_iou_is_the_mean_over_images_with_ood_pixels():
    labels_a = np.array([[1, 1, 0, 255]], np.uint8)
    labels_b = np.array([[0, 0, 0, 0]], np.uint8)  # no OOD: left out
    masks_a = np.array([[[0.95, 0.5, 0.95, 0.95]],   # M = {0, 2} (3 void)
                        [[0.91, 0.92, 0.1, 0.1]],    # M = {0, 1} = O
                        [[0.9, 0.9, 0.9, 0.9]]],     # > 0.9 strictly: none
                       np.float32)
    masks_b = np.full((3, 1, 4), 0.99, np.float32)
    stats = QueryStatistics(3)
    stats.update(masks_a, labels_a).update(masks_b, labels_b)
    got = stats.compute()
    # |M & O| / |M | O|: 1 / 3, 2 / 2, 0 / 2
    np.testing.assert_allclose(got['iou'], [1 / 3, 1.0, 0.0])
    assert got['images'] == 2 and got['images_with_ood'] == 1
    assert QuerySelection(3, iou=got['iou'], ap=got['ap']).top(2) == [1, 0]


def test_streaming_and_merging_equal_one_pass():
    images = _reference_images(seed=1)
    one = QueryStatistics(4)
    for masks, labels in images:
        one.update(masks, labels)
    a, b = QueryStatistics(4), QueryStatistics(4)
    a.update(*images[0])
    for masks, labels in images[1:]:
        b.update(masks, labels)
    merged = a.empty_like().merge(b).merge(a)
    got, expected = merged.compute(), one.compute()
    assert got['ap'] == expected['ap']  # the same histograms: bit for bit
    np.testing.assert_allclose(got['iou'], expected['iou'], rtol=1e-12)
    assert {k: got[k] for k in ('images', 'ood_pixels', 'id_pixels')} == {
        k: expected[k] for k in ('images', 'ood_pixels', 'id_pixels')}


def test_statistics_refuse_mismatched_inputs():
    with pytest.raises(ValueError, match=r'masks \(3, 2, 2\) do not match 4 '
                       'queries'):
        QueryStatistics(4).update(np.zeros((3, 2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match='OOD labels must be 0'):
        QueryStatistics(1).update(np.zeros((1, 2, 2)), np.full((2, 2), 7))
    with pytest.raises(ValueError, match='NaN or Inf'):
        QueryStatistics(1).update(np.full((1, 1, 2), np.nan),
                                  np.zeros((1, 2)))


# ---------------------------------------------------------------------------
# the selection file

def _selection(**binding):
    return QuerySelection(
        num_queries=3, iou=[0.1, 0.5, float('nan')], ap=[0.3, 0.2, 0.9],
        reference=dict(dataset='ref', images=2),
        binding=dict(dict(checkpoint_sha256='a' * 64, checkpoint='m.pth'),
                     **binding))


def test_the_file_round_trips_and_feeds_the_scorer(tmp_path):
    path = str(tmp_path / 'q.json')
    _selection().save(path)
    data = json.loads(open(path).read())
    assert data['schema_version'] == 1 and data['per_query']['iou'][2] is None
    back = QuerySelection.load(path)
    assert back.iou[:2] == [0.1, 0.5] and back.iou[2] is None
    assert back.reference == dict(dataset='ref', images=2)
    assert build_scorer(f'maskomaly:queries_file={path},top_k=2').queries \
        == [1, 0]
    assert build_scorer(f'maskomaly:queries_file={path},top_k=1,'
                        'select_by=ap').queries == [2]
    # an undefined IoU is never selected
    with pytest.raises(ValueError, match=r'no iou for queries \[2\]: its '
                       "reference set 'ref' has no OOD pixels"):
        build_scorer(f'maskomaly:queries_file={path},top_k=3')
    with pytest.raises(ValueError, match=r'`top_k` \(4\) exceeds the 3 '
                       'queries'):
        build_scorer(f'maskomaly:queries_file={path},top_k=4')


def test_a_selection_for_another_model_is_refused(tmp_path):
    sel = _selection()
    sel.check_model(3, 'a' * 64)  # its own model
    with pytest.raises(ValueError, match=r'q.json belongs to another '
                       r'checkpoint \(m.pth, SHA-256 aaaaaaaaaaaa...\), not '
                       r'this one \(SHA-256 bbbbbbbbbbbb...\)'):
        sel.check_model(3, 'b' * 64, where='q.json')
    with pytest.raises(ValueError, match='fitted on a model with 3 queries; '
                       'this model has 100'):
        sel.check_model(100, 'a' * 64)
    # when scoring: the number of queries of the model at hand
    path = str(tmp_path / 'q.json')
    sel.save(path)
    x = hand_case()
    wide = ScoreInputs(x.logits, head_kind='mask',
                       query_logits=torch.cat([x.query_logits] * 2, 1),
                       mask_probs=torch.cat([x.mask_probs] * 2, 1))
    with pytest.raises(ValueError, match='3 queries; this model has 6'):
        build_scorer(dict(type='maskomaly', queries_file=path,
                          top_k=1))(wide)


@pytest.mark.parametrize('edit,match', [
    (lambda d: d.pop('binding'), "the field 'binding' is missing"),
    (lambda d: d.update(kind='sml'), "`kind` is 'sml'"),
    (lambda d: d['per_query'].update(ap=[1, 2]),
     r'per_query.ap must hold 3 numbers'),
    (lambda d: d.update(schema_version=7), 'schema version 7, newer'),
])
def test_a_damaged_file_is_named(tmp_path, edit, match):
    path = tmp_path / 'q.json'
    _selection().save(str(path))
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DamagedFileError, match=match):
        QuerySelection.load(str(path))


def test_ranking_breaks_ties_by_index_and_puts_undefined_last():
    sel = QuerySelection(4, iou=[0.5, None, 0.5, 0.7], ap=[math.nan] * 4)
    assert sel.ranking('iou') == [3, 0, 2, 1]
