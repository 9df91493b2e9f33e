"""The feature-space scorers against independent computations of their
formulas (sklearn, numpy), and the streamed statistics they are fitted
with against one pass over all pixels.

pytorch-ood is not installed here (it needs torchvision); where a test
follows its reference computation, it is rewritten in numpy from the paper
(and pytorch-ood's code, read, not imported), as each test says.
"""
import numpy as np
import pytest
import torch

from mmseg_ood.scorers import (FeatureStatistics, ScoreInputs, build_scorer)
from mmseg_ood.scorers.feature_space.statistics import (HISTOGRAM_BITS,
                                                        StatisticsSpec,
                                                        embedding_hash)


def _pixels(seed=0, n=600, d=6, c=3):
    """Embeddings of three clusters (ReLU-like: non-negative, some zeros)
    with a classifier that separates them; predicted labels."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.5, 3.0, (c, d))
    y_true = rng.integers(0, c, n)
    z = np.maximum(centres[y_true] + rng.normal(0, 0.6, (n, d)), 0)
    # nearest-centre classifier, a little perturbed: every class predicted
    w = centres + rng.normal(0, 0.1, (c, d))
    b = -0.5 * (centres**2).sum(1) + rng.normal(0, 0.1, c)
    return z.astype(np.float32), w.astype(np.float32), b.astype(np.float32)


def _inputs(z, w, b, shape=None):
    """ScoreInputs of pixels ``z`` ``(P, D)``: as ``(1, D, h, w)`` maps
    when ``shape = (h, w)``, else ``(P, D)``."""
    zt, wt, bt = (torch.from_numpy(a) for a in (z, w, b))
    logits = zt @ wt.t() + bt
    if shape is not None:
        zt = zt.t().reshape(1, -1, *shape)
        logits = logits.t().reshape(1, -1, *shape)
    return ScoreInputs(logits=logits, embeddings=zt, cls_weight=wt,
                       cls_bias=bt)


def _fitted(name, z, w, b, **params):
    """Scorer ``name`` fitted on pixels ``z`` (labels: its argmax)."""
    scorer = build_scorer(dict(type=name, **params))
    stats = FeatureStatistics(dict(scorer.statistics_spec()))
    stats.partial_fit(_inputs(z, w, b))
    return scorer.set_statistics(stats)


def _energy(logits):
    m = logits.max(1, keepdims=True)
    return -(m[:, 0] + np.log(np.exp(logits - m).sum(1)))


# the statistics --------------------------------------------------------------

def test_moments_streamed_in_chunks_equal_one_pass():
    z, _, _ = _pixels()
    y = np.arange(len(z)) % 3
    one = FeatureStatistics(dict(moments=True)).update(z, y)
    chunks = FeatureStatistics(dict(moments=True), num_classes=3)
    for part in np.array_split(np.arange(len(z)), 7):
        chunks.update(z[part], y[part])
    z64 = z.astype(np.float64)
    mu = np.stack([z64[y == c].mean(0) for c in range(3)])
    within = sum((z64[y == c] - mu[c]).T @ (z64[y == c] - mu[c])
                 for c in range(3)) / len(z)
    for stats in (one, chunks):
        np.testing.assert_allclose(stats.class_means(), mu, rtol=1e-12)
        np.testing.assert_allclose(stats.within_class_covariance(), within,
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(stats.covariance(),
                                   np.cov(z64.T, bias=True), rtol=1e-9,
                                   atol=1e-12)


def test_merging_two_ranks_equals_one_pass_and_the_bank_is_identical():
    z, _, _ = _pixels(n=3000, d=5)
    y = (z[:, 0] > 1.5).astype(int)
    spec = dict(moments=True, histogram=True, bank_size=500)
    # 9 "images", added in order by one process, dealt out to 2 ranks
    images = np.array_split(np.random.default_rng(1).permutation(len(z)), 9)
    one = FeatureStatistics(spec, num_classes=2)
    for part in images:
        one.update(z[part], y[part])
    rank = [FeatureStatistics(spec, num_classes=2) for _ in range(2)]
    for i, part in enumerate(images):
        rank[i % 2].update(z[part], y[part])
    merged = rank[0].empty_like()
    for r in rank:
        merged.load_state_dict(r.state_dict())
    assert merged.pixels == one.pixels == 3000
    # the compensated sums: the same float64 values, added in another
    # order (plain float64 sums differ in their last bits here)
    np.testing.assert_array_equal(merged.second_moment(),
                                  one.second_moment())
    np.testing.assert_array_equal(merged.class_means(), one.class_means())
    np.testing.assert_array_equal(merged.histogram, one.histogram)
    # the bank: the same sample, bit for bit, whatever the order
    np.testing.assert_array_equal(merged.bank_keys, one.bank_keys)
    np.testing.assert_array_equal(merged.bank, one.bank)
    # = the 500 pixels of smallest hash, and its prefix is the smaller bank
    keys = embedding_hash(z)
    np.testing.assert_array_equal(np.sort(keys)[:500], one.bank_keys)
    whole = FeatureStatistics(spec, num_classes=2).update(z, y)
    np.testing.assert_array_equal(whole.bank, one.bank)  # any batching
    np.testing.assert_allclose(whole.second_moment(), one.second_moment(),
                               rtol=1e-14)
    small = FeatureStatistics(dict(bank_size=50)).update(z, y)
    np.testing.assert_array_equal(small.bank, one.bank_sample(50))


def test_activation_percentile_within_the_bins_resolution():
    rng = np.random.default_rng(2)
    values = np.concatenate([np.zeros(4000), rng.gamma(2.0, 1.5, 20000),
                             -rng.gamma(1.0, 0.1, 500)]).astype(np.float32)
    z = values.reshape(-1, 4)
    stats = FeatureStatistics(dict(histogram=True)).update(
        z, np.zeros(len(z), int))
    assert stats.histogram.sum() == values.size
    assert len(stats.histogram) == 1 << HISTOGRAM_BITS
    for p in (0, 5, 10, 50, 90, 99, 100):
        exact = np.percentile(values.astype(np.float64), p)
        got = stats.activation_percentile(p)
        assert abs(got - exact) <= 2.0**-11 * abs(exact) + 1e-30, (p, got,
                                                                   exact)


def test_save_and_load_round_trip(tmp_path):
    z, w, b = _pixels()
    stats = FeatureStatistics(dict(moments=True, histogram=True,
                                   bank_size=100))
    stats.partial_fit(_inputs(z, w, b, shape=(20, 30)))
    path = str(tmp_path / 'stats.npz')
    stats.save(path, meta=dict(split='val'))
    back = FeatureStatistics.load(path)
    assert back.meta == dict(split='val') and back.pixels == 600
    from mmseg_ood.scorers.feature_space.statistics import ARRAYS
    for key in ARRAYS:
        np.testing.assert_array_equal(getattr(back, key), getattr(stats, key))
    # a file that is not one: a one-line error naming it
    bad = tmp_path / 'bad.npz'
    bad.write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='bad.npz'):
        FeatureStatistics.load(str(bad))
    with pytest.raises(FileNotFoundError, match='missing.npz'):
        FeatureStatistics.load(str(tmp_path / 'missing.npz'))


def test_specs_combine_and_cover():
    a = StatisticsSpec(moments=True, bank_size=10)
    b = StatisticsSpec(histogram=True, bank_size=100)
    both = a | b
    assert both == dict(moments=True, histogram=True, bank_size=100)
    assert both.covers(a) and both.covers(b) and not a.covers(b)
    with pytest.raises(ValueError, match='collects nothing'):
        FeatureStatistics(dict())


def test_bad_updates_are_named():
    stats = FeatureStatistics(dict(moments=True), num_classes=2)
    with pytest.raises(ValueError, match=r'class indices must be in \[0, 2\)'):
        stats.update(np.ones((3, 4)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match='NaN or Inf'):
        stats.update(np.full((2, 4), np.nan), np.array([0, 1]))
    stats.update(np.ones((2, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match='D=4 .* D=5'):
        stats.update(np.ones((2, 5)), np.array([0, 1]))


# the scorers -----------------------------------------------------------------

def test_mahalanobis_equals_sklearn():
    """Lee et al.'s code: sklearn's EmpiricalCovariance on the class-centred
    features; the score is the smallest distance to a class mean."""
    from sklearn.covariance import EmpiricalCovariance
    z, w, b = _pixels()
    y = (z @ w.T + b).argmax(1)
    mu = np.stack([z[y == c].astype(np.float64).mean(0) for c in range(3)])
    cov = EmpiricalCovariance().fit(z - mu[y])
    test, _, _ = _pixels(seed=5, n=200)
    expected = np.min([cov.mahalanobis(test - mu[c]) for c in range(3)], 0)
    scorer = _fitted('mahalanobis', z, w, b)
    got = scorer(_inputs(test, w, b, shape=(10, 20)))
    assert got.shape == (1, 10, 20)
    np.testing.assert_allclose(got.numpy().reshape(-1), expected, rtol=1e-4,
                               atol=1e-4)


def test_relative_mahalanobis_equals_sklearn():
    from sklearn.covariance import EmpiricalCovariance
    z, w, b = _pixels()
    y = (z @ w.T + b).argmax(1)
    mu = np.stack([z[y == c].astype(np.float64).mean(0) for c in range(3)])
    cov = EmpiricalCovariance().fit(z - mu[y])
    background = EmpiricalCovariance().fit(z)
    test, _, _ = _pixels(seed=6, n=50)
    md = np.min([cov.mahalanobis(test - mu[c]) for c in range(3)], 0)
    expected = md - background.mahalanobis(test)
    got = _fitted('rmd', z, w, b)(_inputs(test, w, b))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=2e-4)


def test_mahalanobis_of_a_singular_covariance_uses_the_pseudo_inverse():
    """A dead (always zero) unit: sklearn's pinvh drops it, and so do we."""
    from sklearn.covariance import EmpiricalCovariance
    z, w, b = _pixels()
    z[:, 2] = 0
    y = (z @ w.T + b).argmax(1)
    mu = np.stack([z[y == c].astype(np.float64).mean(0) for c in range(3)])
    cov = EmpiricalCovariance().fit(z - mu[y])
    expected = np.min([cov.mahalanobis(z[:40] - mu[c]) for c in range(3)],
                      0)
    got = _fitted('mahalanobis', z, w, b)(_inputs(z[:40], w, b))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_knn_equals_sklearn_nearest_neighbours():
    from sklearn.neighbors import NearestNeighbors
    z, w, b = _pixels()
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    test, _, _ = _pixels(seed=7, n=300)
    test_unit = test / np.linalg.norm(test, axis=1, keepdims=True)
    distances, _ = NearestNeighbors(n_neighbors=5).fit(unit).kneighbors(
        test_unit)
    scorer = _fitted('knn', z, w, b, k=5, bank_size=1000, chunk_size=64)
    got = scorer(_inputs(test, w, b))
    np.testing.assert_allclose(got.numpy(), distances[:, -1], atol=2e-3)


def test_vim_equals_the_authors_computation():
    """ViM's code (and pytorch-ood's, read): origin -pinv(W) b,
    eigenvectors of EmpiricalCovariance(assume_centered=True) of the
    shifted features, alpha from every fitted feature (here the bank holds
    them all), score alpha ||residual|| - logsumexp(logits)."""
    from sklearn.covariance import EmpiricalCovariance
    z, w, b = _pixels(d=8)
    z64, w64, b64 = (a.astype(np.float64) for a in (z, w, b))
    u = -np.linalg.pinv(w64) @ b64
    cov = EmpiricalCovariance(assume_centered=True).fit(z64 - u)
    values, vectors = np.linalg.eig(cov.covariance_)
    residual = vectors.T[np.argsort(values * -1)[3:]].T
    logits = z64 @ w64.T + b64
    alpha = logits.max(1).mean() / np.linalg.norm((z64 - u) @ residual,
                                                  axis=1).mean()
    test, _, _ = _pixels(seed=8, n=100, d=8)
    t64 = test.astype(np.float64)
    test_logits = t64 @ w64.T + b64
    expected = alpha * np.linalg.norm((t64 - u) @ residual, axis=1) + \
        _energy(test_logits)
    scorer = _fitted('vim', z, w, b, principal_dim=3, bank_size=1000)
    np.testing.assert_allclose(scorer(_inputs(test, w, b)).numpy(), expected,
                               rtol=1e-4, atol=1e-4)


def test_react_clips_at_the_id_percentile():
    z, w, b = _pixels()
    scorer = _fitted('react', z, w, b, percentile=80)
    exact = np.percentile(z.astype(np.float64), 80)
    assert abs(scorer.threshold - exact) <= 2.0**-11 * exact
    test, _, _ = _pixels(seed=9, n=100)
    clipped = np.minimum(test.astype(np.float64), scorer.threshold)
    expected = _energy(clipped @ w.T.astype(np.float64) + b)
    np.testing.assert_allclose(scorer(_inputs(test, w, b)).numpy(), expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('variant', ['p', 'b', 's'])
def test_ash_per_pixel_equals_pytorch_ood_formula(variant):
    """pytorch-ood's ash_p / ash_b / ash_s (read) on each pixel as one
    (1, D, 1, 1) sample, rewritten in numpy: keep the k = D - round(D p)
    largest values; b: fill them with sum / k; s: scale by
    exp(sum / kept sum)."""
    z, w, b = _pixels(d=10)
    p = 0.65
    k = 10 - int(np.round(10 * p))
    shaped = np.zeros_like(z, dtype=np.float64)
    for i, row in enumerate(z.astype(np.float64)):
        top = np.argsort(-row, kind='stable')[:k]
        if variant == 'b':
            shaped[i, top] = row.sum() / k
        else:
            shaped[i, top] = row[top]
        if variant == 's':
            shaped[i] *= np.exp(row.sum() / shaped[i].sum())
    expected = _energy(shaped @ w.T.astype(np.float64) + b)
    scorer = build_scorer(dict(type='ash', variant=variant, percentile=65))
    np.testing.assert_allclose(scorer(_inputs(z, w, b)).numpy(), expected,
                               rtol=1e-5, atol=1e-4)


def test_ash_s_of_an_all_zero_embedding_is_the_energy_of_the_bias():
    _, w, b = _pixels()
    z = np.zeros((2, 6), np.float32)
    got = build_scorer('ash')(_inputs(z, w, b))
    np.testing.assert_allclose(got.numpy(), _energy(b[None].repeat(2, 0)),
                               rtol=1e-6)


def test_ash_s_refuses_embeddings_that_are_not_rectified():
    _, w, b = _pixels()
    z = np.full((2, 6), -1.0, np.float32)
    with pytest.raises(ValueError, match="variant 's'.*summing to -1:"):
        build_scorer('ash')(_inputs(z, w, b))
    # pruning alone is defined for any sign
    assert torch.isfinite(build_scorer('ash:variant=p')(_inputs(z, w,
                                                                b))).all()


def test_damaged_bank_and_foreign_files_are_named(tmp_path):
    z, w, b = _pixels()
    stats = FeatureStatistics(dict(bank_size=100))
    stats.partial_fit(_inputs(z, w, b))
    good = str(tmp_path / 'good.npz')
    stats.save(good)
    with np.load(good) as data:
        arrays = dict(data)
    arrays['bank'] = arrays['bank'][:, :3]   # another D
    np.savez(tmp_path / 'bank.npz', **arrays)
    with pytest.raises(ValueError, match=r'bank.npz: the embedding bank'):
        FeatureStatistics.load(str(tmp_path / 'bank.npz'))
    np.save(tmp_path / 'array.npy', np.zeros(3))
    with pytest.raises(ValueError, match='array.npy: not a feature '
                       'statistics file'):
        FeatureStatistics.load(str(tmp_path / 'array.npy'))


def test_copies_of_one_embedding_enter_the_bank_once():
    z = np.zeros((1000, 4), np.float32)   # all-zero ReLU outputs
    z[:20] = np.random.default_rng(0).random((20, 4))
    stats = FeatureStatistics(dict(bank_size=50)).update(
        z, np.zeros(1000, int))
    assert len(stats.bank) == 21
    assert len(np.unique(stats.bank, axis=0)) == 21


def test_dice_masks_by_mean_contribution():
    """DICE's fit (pytorch-ood's, read): V = mean(z) * W, threshold the
    p-th percentile of V, keep V > threshold; energy of the masked
    classifier."""
    z, w, b = _pixels(d=8)
    mean = z.astype(np.float64).mean(0)
    v = w.astype(np.float64) * mean[None]
    masked = np.where(v > np.percentile(v, 70), w, 0).astype(np.float64)
    test, _, _ = _pixels(seed=3, n=100, d=8)
    expected = _energy(test.astype(np.float64) @ masked.T + b)
    scorer = _fitted('dice', z, w, b, sparsity=70)
    np.testing.assert_allclose(scorer(_inputs(test, w, b)).numpy(), expected,
                               rtol=1e-5, atol=1e-5)
    assert (scorer._derived['classifier'][2]['weight'] != 0).sum() == \
        (v > np.percentile(v, 70)).sum()


def test_odin_scores_max_softmax_at_its_temperature():
    logits = torch.randn(2, 4, 3, 5) * 20
    got = build_scorer('odin:temperature=10')(ScoreInputs(logits=logits))
    expected = 1 - torch.softmax(logits / 10, 1).max(1).values
    torch.testing.assert_close(got, expected)
    plain = ScoreInputs(logits=logits)
    torch.testing.assert_close(build_scorer('odin:temperature=1')(plain),
                               build_scorer('msp')(plain))


# errors ----------------------------------------------------------------------

def test_an_unfitted_scorer_names_the_remedy():
    z, w, b = _pixels()
    with pytest.raises(RuntimeError, match='--fit-on'):
        build_scorer('mahalanobis')(_inputs(z, w, b))


def test_statistics_of_another_dimension_or_spec_are_refused():
    z, w, b = _pixels()
    scorer = _fitted('mahalanobis', z, w, b)
    z8, w8, b8 = _pixels(d=8)
    with pytest.raises(ValueError, match='fitted on embeddings of D=6'):
        scorer(_inputs(z8, w8, b8))
    bank_only = FeatureStatistics(dict(bank_size=10))
    bank_only.partial_fit(_inputs(z, w, b))
    with pytest.raises(ValueError, match="'mahalanobis' needs statistics"):
        build_scorer('mahalanobis').set_statistics(bank_only)
    with pytest.raises(ValueError, match='holds 10 ID pixels, fewer than '
                       'k=20'):
        _fitted('knn', z[:10], w, b, k=20, bank_size=50)


@pytest.mark.parametrize('spec, match', [
    ('react:percentile=101', 'percentile'), ('ash:variant=x', 'variant'),
    ('ash:percentile=100', 'percentile'), ('dice:sparsity=-1', 'sparsity'),
    ('knn:k=0', '`k`'), ('knn:k=20,bank_size=10', 'bank_size'),
    ('vim:principal_dim=0', 'principal_dim'),
    ('odin:temperature=0', 'temperature'), ('odin:epsilon=-1', 'epsilon')])
def test_bad_parameters_are_named(spec, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build_scorer(spec)


def test_feature_scorers_are_skipped_on_a_head_without_a_classifier():
    for name in ('react', 'ash', 'dice', 'vim', 'mahalanobis', 'rmd', 'knn'):
        reason = build_scorer(name).unsupported_reason(False, 'mask')
        assert reason and 'embedding scorer' in reason
