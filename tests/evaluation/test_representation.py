"""Streaming representation statistics equal numpy on the concatenated
logit vectors (SCrIBE Fig. 3-4)."""
import numpy as np
import pytest
import torch

from mmseg_ood.evaluation import (RepresentationAccumulator,
                                  RepresentationMetric,
                                  effective_dimensionality)

K = 5


def batches(seed=0, n=4):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(K, K))
    return [np.einsum('ij,jhw->ihw', mix, rng.normal(size=(K, 6 + i, 7)))
            .astype(np.float32) for i in range(n)]


def concatenated(parts):
    return np.concatenate([p.reshape(K, -1) for p in parts], 1).astype(
        np.float64)


def test_autocorrelation_and_explained_variance_equal_numpy():
    parts = batches()
    acc = RepresentationAccumulator(K)
    for p in parts:
        acc.update(torch.from_numpy(p))
    v = concatenated(parts)
    pred = v.argmax(0)
    for c in range(K):
        vc = v[:, pred == c]
        r = vc @ vc.T / vc.shape[1]
        ref = r / np.sqrt(np.outer(np.diag(r), np.diag(r)))
        np.testing.assert_allclose(acc.autocorrelation(c), ref, rtol=1e-10)
        assert acc.count[c] == vc.shape[1]
    eig = np.sort(np.linalg.eigvalsh(np.cov(v, bias=True)))[::-1]
    np.testing.assert_allclose(acc.explained_variance(),
                               np.cumsum(eig) / eig.sum(), rtol=1e-9)
    out = acc.compute()
    ev = np.cumsum(eig) / eig.sum()
    assert out['dims_90'] == int(np.argmax(ev >= 0.9)) + 1
    assert out['pixels'] == v.shape[1]


def test_merging_equals_one_pass():
    parts = batches(1, 6)
    one = RepresentationAccumulator(K)
    for p in parts:
        one.update(p)
    a, b = RepresentationAccumulator(K), RepresentationAccumulator(K)
    for p in parts[:2]:
        a.update(p)
    for p in parts[2:]:
        b.update(p)
    merged = a.empty_like().merge(b).merge(a)
    np.testing.assert_array_equal(merged.count, one.count)
    np.testing.assert_allclose(merged.outer, one.outer, rtol=1e-12)
    np.testing.assert_allclose(merged.explained_variance(),
                               one.explained_variance(), rtol=1e-10)


def test_effective_dimensionality_by_hand():
    # variances 4, 1, 0 along three axes: 80 % in one component
    ev = np.array([0.8, 1.0, 1.0])
    assert effective_dimensionality(ev, 0.8) == 1
    assert effective_dimensionality(ev, 0.9) == 2
    with pytest.raises(ValueError, match='fraction'):
        effective_dimensionality(ev, 0)


def test_metric_and_errors():
    m = RepresentationMetric()
    for p in batches():
        m.process({}, [dict(seg_logits=dict(data=torch.from_numpy(p)))])
    out = m.evaluate(4)
    assert out['representation/pixels'] == sum(
        p[0].size for p in batches())
    assert m.last_accumulator.num_classes == K
    acc = RepresentationAccumulator(K)
    with pytest.raises(ValueError, match=r'logits must be \(5, H, W\)'):
        acc.update(np.zeros((3, 4, 4)))
    bad = np.zeros((K, 2, 2))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        acc.update(bad)
    acc.update(np.ones((K, 2, 2)))
    with pytest.raises(ValueError, match='cannot merge statistics of 3'):
        acc.merge(RepresentationAccumulator(3).update(np.ones((3, 1, 1))))
    # an empty accumulator (a rank without samples) takes the other's size
    empty = RepresentationAccumulator(2).merge(acc)
    assert empty.num_classes == K and empty.count.sum() == 4
    acc = RepresentationAccumulator(K)
    with pytest.raises(ValueError, match='`num_classes`'):
        RepresentationAccumulator(1)
    assert np.isnan(acc.autocorrelation(0)).all()
