"""Mask-level scores of mask-classification heads: EAM (Grcić et al., CVPR-W
2023) and Mask2Anomaly (Rai et al., ICCV 2023), on hand-computed pixels and
against an independent numpy computation. The flip option and the runs on a
Mask2Former are tested in tests/models/test_mask_classification.py."""
import math

import numpy as np
import pytest
import torch

import mmseg_ood.scorers as scorers
from mmseg_ood.scorers import (EnsembleOfMasks, Mask2Anomaly, ScoreInputs,
                               UnsupportedScorerError, build_scorer,
                               parse_scorer_spec)
from mmseg_ood.scorers.mask_classification.mask2anomaly import (
    CITYSCAPES_STUFF, SYNTHETIC_STREET_STUFF)
from mmseg_ood.synthetic import STREET_CLASSES


def mask_inputs(query_logits, mask_probs):
    """ScoreInputs of a mask head, with f computed from the queries as
    mmseg does (softmax over K + 1, "no object" dropped)."""
    query_logits = torch.as_tensor(query_logits, dtype=torch.float64)
    mask_probs = torch.as_tensor(mask_probs, dtype=torch.float64)
    p = torch.softmax(query_logits, -1)[..., :-1]
    spatial = 'hw'[:mask_probs.dim() - 2]
    f = torch.einsum(f'nqk,nq{spatial}->nk{spatial}', p, mask_probs)
    return ScoreInputs(f, head_kind='mask', query_logits=query_logits,
                       mask_probs=mask_probs)


def test_registered_and_exported():
    assert isinstance(build_scorer('eam'), EnsembleOfMasks)
    assert isinstance(build_scorer('mask2anomaly'), Mask2Anomaly)
    assert {'EnsembleOfMasks', 'Mask2Anomaly'} <= set(scorers.__all__)
    default = build_scorer('mask2anomaly')
    assert default.stuff_classes == () and default.flip is False
    assert (default.query_threshold, default.mask_threshold) == (0.95, 0.5)
    assert build_scorer('eam').requires_queries
    # without stuff classes the score reads f only; with them, the queries
    assert not default.requires_queries and not default.requires_flip
    assert build_scorer('mask2anomaly:stuff_classes=[2]').requires_queries
    assert build_scorer('mask2anomaly:flip=True').requires_flip


# EAM -------------------------------------------------------------------------
def test_eam_on_a_hand_computed_pixel():
    # softmax([ln 3, 0, 0]) = [3/5, 1/5, 1/5]; softmax([0, 0, ln 2]) =
    # [1/4, 1/4, 1/2] ("no object" last); masks sigmoid = 1/2 and 3/4
    x = mask_inputs([[[math.log(3), 0., 0.], [0., 0., math.log(2)]]],
                    torch.tensor([[0.5, 0.75]]).view(1, 2, 1, 1))
    out = build_scorer('eam')(x)
    # 1 - (3/5 * 1/2 + 1/4 * 3/4) = 1 - 0.4875: the max over the known
    # classes of the softmax over all K + 1, not renormalised (that would
    # give 1 - (3/4 * 1/2 + 1/2 * 3/4) = 0.25)
    assert out.shape == (1, 1, 1) and out.dtype == torch.float32
    assert out.item() == pytest.approx(0.5125, abs=1e-6)


def test_eam_is_not_normalised():
    # two confident queries covering the pixel: the sum exceeds 1
    big = math.log(1000)
    x = mask_inputs([[[big, 0., 0.], [0., big, 0.]]],
                    torch.ones(1, 2, 1, 1))
    expected = 1 - 2 * 1000 / 1002
    assert build_scorer('eam')(x).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize('spatial', [(), (2, 3)])
def test_eam_matches_numpy(spatial):
    rng = np.random.default_rng(0)
    n, q, k = 2, 4, 3
    cls = rng.normal(size=(n, q, k + 1)) * 2
    masks = rng.uniform(size=(n, q) + spatial)
    e = np.exp(cls - cls.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    conf = p[..., :k].max(-1)
    expected = 1 - np.einsum('nq,nq...->n...', conf, masks)
    out = build_scorer('eam')(mask_inputs(cls, masks))
    assert out.shape == (n, ) + spatial
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_eam_orders_claimed_below_unclaimed():
    # the same confident query; the pixel its mask covers is an inlier
    x = mask_inputs([[[math.log(9), 0., 0.]]],
                    torch.tensor([0.95, 0.05]).view(1, 1, 1, 2))
    out = build_scorer('eam')(x)[0, 0]
    assert out[0] < out[1]


# Mask2Anomaly ----------------------------------------------------------------
def stuff_case():
    """K = 3 classes (0 road, 1 building: stuff, 2 car), Q = 3 queries,
    three pixels; the numbers are worked out in the test."""
    ln = math.log
    query_logits = [[
        [0., ln(96), 0., ln(2)],  # (1, 96, 1, 2) / 100: building 0.96
        [0., 0., ln(8), 0.],  # (1, 1, 8, 1) / 11: car 8/11
        [0., ln(9), 0., 0.],  # (1, 9, 1, 1) / 12: building 0.75 < 0.95
    ]]
    masks = torch.tensor([[[0.8, 0.5, 0.1], [0.1, 0.2, 0.9],
                           [0.3, 0.3, 0.3]]]).view(1, 3, 1, 3)
    return mask_inputs(query_logits, masks)


def test_mask2anomaly_without_stuff_is_one_minus_max_f():
    x = stuff_case()
    out = build_scorer('mask2anomaly')(x)[0, 0]
    # pixel 0: f_building = 0.96 * 0.8 + 1/11 * 0.1 + 0.75 * 0.3 = 1.00209..
    f0 = 0.768 + 0.1 / 11 + 0.225
    # pixel 1: f_building = 0.96 * 0.5 + 0.2 / 11 + 0.225 = 0.72318..
    f1 = 0.48 + 0.2 / 11 + 0.225
    # pixel 2: f_car = 0.01 * 0.1 + 8/11 * 0.9 + 1/12 * 0.3 = 0.68045..
    f2 = 0.001 + 7.2 / 11 + 0.025
    expected = [1 - f0, 1 - f1, 1 - f2]
    assert out.tolist() == pytest.approx(expected, abs=1e-6)
    assert out[0] < 0  # f is not normalised: the score can be negative
    torch.testing.assert_close(
        out, (1 - x.logits.max(1).values)[0, 0].float())


def test_mask2anomaly_suppresses_confident_stuff_masks():
    x = stuff_case()
    out = build_scorer(dict(type='mask2anomaly', stuff_classes=[1]))(x)[0, 0]
    # query 0 is kept (building, 0.96 > 0.95): its mass 0.96 * mask =
    # (0.768, 0.48, 0.096) >= 0.5 only at pixel 0, which is set to 0;
    # query 2 (building at 0.75) and query 1 (car) are not kept. (One kept
    # query suffices here; the authors' script needs two.)
    f1 = 0.48 + 0.2 / 11 + 0.225
    f2 = 0.001 + 7.2 / 11 + 0.025
    assert out.tolist() == pytest.approx([0.0, 1 - f1, 1 - f2], abs=1e-6)
    # car is not stuff: nothing is suppressed
    car = build_scorer(dict(type='mask2anomaly', stuff_classes=[2]))(x)
    torch.testing.assert_close(car, build_scorer('mask2anomaly')(x))
    # with a lower query threshold query 2 is kept too: 0.75 * 0.3 = 0.225
    # stays below 0.5, so the map does not change
    low = build_scorer(dict(type='mask2anomaly', stuff_classes=[1],
                            query_threshold=0.7))(x)[0, 0]
    torch.testing.assert_close(low, out)
    # a lower mask threshold: 0.48 >= 0.45 at pixel 1 as well
    wide = build_scorer(dict(type='mask2anomaly', stuff_classes=[1],
                             mask_threshold=0.45))(x)[0, 0]
    assert wide.tolist() == pytest.approx([0.0, 0.0, 1 - f2], abs=1e-6)


def test_mask2anomaly_matches_numpy():
    rng = np.random.default_rng(1)
    n, q, k, h, w = 2, 6, 4, 3, 5
    cls = rng.normal(size=(n, q, k + 1)) * 4
    masks = rng.uniform(size=(n, q, h, w))
    e = np.exp(cls - cls.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    f = np.einsum('nqk,nqhw->nkhw', p[..., :k], masks)
    top, label = p.max(-1), p.argmax(-1)
    stuff = [1, 3]
    kept = np.isin(label, stuff) & (top > 0.6)
    mass = (top * kept)[..., None, None] * masks
    expected = np.where(mass.max(1) >= 0.3, 0.0, 1 - f.max(1))
    assert kept.any() and (mass.max(1) >= 0.3).any()  # the case is live
    scorer = build_scorer(dict(type='mask2anomaly', stuff_classes=stuff,
                               query_threshold=0.6, mask_threshold=0.3))
    out = scorer(mask_inputs(cls, masks))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_mask2anomaly_per_image_scores():
    # (N, K) logits: one score per image
    rng = np.random.default_rng(2)
    x = mask_inputs(rng.normal(size=(3, 4, 3)), rng.uniform(size=(3, 4)))
    out = build_scorer('mask2anomaly:stuff_classes=[0]')(x)
    assert out.shape == (3, )
    out = build_scorer('eam')(x)
    assert out.shape == (3, )


def test_stuff_class_presets():
    assert [STREET_CLASSES[i] for i in SYNTHETIC_STREET_STUFF] == [
        'building', 'vegetation', 'sky']
    assert CITYSCAPES_STUFF == tuple(range(2, 11))  # building .. sky


def test_stuff_classes_from_the_command_line_text():
    assert parse_scorer_spec('mask2anomaly:stuff_classes=[2,3,4],flip=True'
                             ) == dict(type='mask2anomaly',
                                       stuff_classes=[2, 3, 4], flip=True)
    scorer = build_scorer('mask2anomaly:stuff_classes=[4, 2, 3]')
    assert scorer.stuff_classes == (2, 3, 4)
    assert repr(scorer) == ('Mask2Anomaly(stuff_classes=[2, 3, 4], flip='
                            'False, query_threshold=0.95, mask_threshold=0.5)')


@pytest.mark.parametrize('args, error, match', [
    (dict(stuff_classes='building'), TypeError,
     r'`stuff_classes` must be a list of class indices'),
    (dict(stuff_classes=2), TypeError, '`stuff_classes` must be a list'),
    (dict(stuff_classes=[2, 'sky']), TypeError,
     r"`stuff_classes` must hold class indices \(ints\), got str 'sky'"),
    (dict(stuff_classes=[True]), TypeError, '`stuff_classes` must hold'),
    (dict(stuff_classes=[-1]), ValueError,
     '`stuff_classes` must be >= 0, got -1'),
    (dict(stuff_classes=[2, 2]), ValueError,
     '`stuff_classes` names a class twice'),
    (dict(flip='yes'), TypeError, "`flip` must be True or False, got str"),
    (dict(flip=1), TypeError, '`flip` must be True or False'),
    (dict(query_threshold=1.0), ValueError,
     r'`query_threshold` must be in \[0, 1\), got 1.0'),
    (dict(query_threshold=-0.1), ValueError, '`query_threshold` must be >='),
    (dict(query_threshold='high'), TypeError, '`query_threshold` must be a '
     'number'),
    (dict(mask_threshold=0), ValueError, '`mask_threshold` must be > 0'),
    (dict(mask_threshold=1.5), ValueError,
     r'`mask_threshold` must be in \(0, 1\], got 1.5'),
])
def test_mask2anomaly_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        build_scorer(dict(type='mask2anomaly', **args))


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="scorer 'eam': unknown argument "
                       "'flip'; accepted: none"):
        build_scorer(dict(type='eam', flip=True))
    with pytest.raises(TypeError, match="unknown argument 'stuff'; "
                       'accepted: stuff_classes, flip'):
        build_scorer('mask2anomaly:stuff=[2]')


def test_stuff_classes_beyond_the_model_are_an_error():
    with pytest.raises(ValueError, match=r"`stuff_classes` \[1, 5\] name "
                       r"classes outside the model's 3 \(0 to 2\)"):
        build_scorer('mask2anomaly:stuff_classes=[1,5]')(stuff_case())


def test_unsupported_inputs_are_refused():
    f = torch.rand(1, 3, 2, 2)
    for name in ('eam', 'mask2anomaly'):
        with pytest.raises(UnsupportedScorerError,
                           match=f"'{name}' needs a mask-classification "
                           "head.*'softmax' head"):
            build_scorer(name)(ScoreInputs(f))
    # f alone: mask2anomaly without stuff classes runs, EAM needs the
    # queries, and so does stuff suppression
    bare = ScoreInputs(f, head_kind='mask')
    assert build_scorer('mask2anomaly')(bare).shape == (1, 2, 2)
    for name in ('eam', 'mask2anomaly:stuff_classes=[1]'):
        with pytest.raises(UnsupportedScorerError,
                           match='mask probabilities'):
            build_scorer(name)(bare)
