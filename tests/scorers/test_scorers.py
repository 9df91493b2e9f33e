"""Scorers: hand formulas, invariances from the thesis, validation."""
import math

import numpy as np
import pytest
import torch

from mmseg_ood.scorers import (OOD_SCORERS, ScoreInputs,
                               StandardizedMaxLogit, UnsupportedScorerError,
                               build_scorer)

ALL = ['msp', 'entropy', 'max_logit', 'energy', 'norm', 'n_max_logit',
       'n_energy']


def make_inputs(n=2, c=5, d=8, hw=(3, 4), alpha=1.0, bias=True, seed=0,
                dtype=torch.float64):
    """Consistent inputs: logits = W (alpha z) + b."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, *hw, generator=g, dtype=dtype) * alpha
    w = torch.randn(c, d, generator=g, dtype=dtype)
    b = torch.randn(c, generator=g, dtype=dtype) if bias else None
    s = torch.einsum('cd,nd...->nc...', w, z)
    if b is not None:
        s = s + b.view(1, c, *([1] * len(hw)))
    return ScoreInputs(s, z, w, b)


@pytest.mark.parametrize('name', ALL)
@pytest.mark.parametrize('hw', [(), (3, 4)], ids=['NC', 'NCHW'])
def test_shapes_and_dtype(name, hw):
    out = build_scorer(name)(make_inputs(hw=hw))
    assert out.shape == (2, *hw)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_hand_computed_values():
    s = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    x = ScoreInputs(s)
    e = np.exp([2.0, 0.0, -1.0])
    p = e / e.sum()
    assert build_scorer('msp')(x).item() == pytest.approx(1 - p.max(),
                                                          rel=1e-6)
    assert build_scorer('entropy')(x).item() == pytest.approx(
        -(p * np.log(p)).sum() / math.log(3), rel=1e-6)
    assert build_scorer('max_logit')(x).item() == pytest.approx(-2.0)
    assert build_scorer('energy')(x).item() == pytest.approx(
        -np.log(e.sum()), rel=1e-6)
    t = 2.5
    assert build_scorer(dict(type='energy', temperature=t))(x).item() == \
        pytest.approx(-t * np.log(np.exp(np.array([2.0, 0, -1]) / t).sum()),
                      rel=1e-6)


def test_norm_scores_on_hand_example():
    z = torch.tensor([[3.0, 4.0]], dtype=torch.float64)     # ||z|| = 5
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([0.5, -0.5], dtype=torch.float64)
    s = z @ w.T + b                                          # [3.5, 7.5]
    x = ScoreInputs(s, z, w, b)
    assert build_scorer('norm')(x).item() == pytest.approx(-5.0)
    # bias dropped: s' = [3, 8] / 5
    assert build_scorer('n_max_logit')(x).item() == pytest.approx(-1.6)
    assert build_scorer(dict(type='n_max_logit', use_bias=True))(x).item() \
        == pytest.approx(-1.5)
    # eta = 0: class weight norms [1, 2] divided out -> [0.6, 0.8]
    assert build_scorer(dict(type='n_max_logit', eta=0.0))(x).item() == \
        pytest.approx(-0.8)
    assert build_scorer('n_energy')(x).item() == pytest.approx(
        -np.log(np.exp(0.6) + np.exp(1.6)), rel=1e-6)


@pytest.mark.parametrize('name', ['msp', 'entropy', 'max_logit', 'energy'])
def test_peaked_scores_lower_than_flat(name):
    peaked = ScoreInputs(torch.tensor([[9.0, 0.0, 0.0, 0.0]]))
    flat = ScoreInputs(torch.tensor([[1.0, 1.0, 1.0, 1.0]]))
    scorer = build_scorer(name)
    assert scorer(peaked).item() < scorer(flat).item()


@pytest.mark.parametrize('alpha', [0.01, 0.5, 3.0, 250.0])
@pytest.mark.parametrize('cfg', [
    dict(type='n_max_logit'),
    dict(type='n_energy'),
    dict(type='n_energy', eta=1.5, temperature=2.0),
    dict(type='n_max_logit', eta=0.0),
])
def test_decoupled_scores_invariant_to_embedding_scale(alpha, cfg):
    """Thesis' central claim: s / ||z|| does not change when z -> alpha z
    (bias excluded)."""
    ref = build_scorer(cfg)(make_inputs(alpha=1.0))
    scaled = build_scorer(cfg)(make_inputs(alpha=alpha))
    torch.testing.assert_close(scaled, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', ['max_logit', 'energy', 'norm'])
def test_raw_scores_change_with_embedding_scale(name):
    ref = build_scorer(name)(make_inputs(alpha=1.0, bias=False))
    scaled = build_scorer(name)(make_inputs(alpha=3.0, bias=False))
    assert not torch.allclose(ref, scaled, atol=1e-3)


def test_bias_breaks_invariance_when_kept():
    cfg = dict(type='n_max_logit', use_bias=True)
    ref = build_scorer(cfg)(make_inputs(alpha=1.0))
    scaled = build_scorer(cfg)(make_inputs(alpha=3.0))
    assert not torch.allclose(ref, scaled, atol=1e-3)


def test_eta_one_is_energy_of_normalized_logits():
    x = make_inputs()
    norm = x.embeddings.norm(dim=1, keepdim=True)
    s = (x.logits - x.cls_bias.view(1, -1, 1, 1)) / norm
    expected = build_scorer(dict(type='energy', temperature=1.7))(
        ScoreInputs(s))
    got = build_scorer(dict(type='n_energy', eta=1.0, temperature=1.7))(x)
    torch.testing.assert_close(got, expected)


def test_eta_zero_is_energy_with_unit_norm_class_weights():
    x = make_inputs()
    w_unit = x.cls_weight / x.cls_weight.norm(dim=1, keepdim=True)
    z_unit = x.embeddings / x.embeddings.norm(dim=1, keepdim=True)
    cos = torch.einsum('cd,nd...->nc...', w_unit, z_unit)
    expected = build_scorer('energy')(ScoreInputs(cos))
    got = build_scorer(dict(type='n_energy', eta=0.0))(x)
    torch.testing.assert_close(got, expected)


def test_delta_one_recovers_raw_scores():
    x = make_inputs(bias=False)
    torch.testing.assert_close(
        build_scorer(dict(type='n_max_logit', delta=1.0))(x),
        build_scorer('max_logit')(x))
    torch.testing.assert_close(
        build_scorer(dict(type='n_energy', delta=1.0, temperature=3.0))(x),
        build_scorer(dict(type='energy', temperature=3.0))(x))


def test_delta_interpolates_the_norm():
    x = make_inputs(bias=False)
    norm = x.embeddings.norm(dim=1)
    got = build_scorer(dict(type='n_max_logit', delta=0.25))(x)
    expected = -(x.logits.amax(dim=1) / norm**0.75)
    torch.testing.assert_close(got, expected.float())


def test_ibe_background_probability_closed_form():
    g = torch.Generator().manual_seed(1)
    fg = torch.randn(4, 6, 3, 3, generator=g, dtype=torch.float64)
    bg = -torch.logsumexp(fg, dim=1, keepdim=True)  # IBE eq. 5
    logits = torch.cat([bg, fg], dim=1)             # background index 0
    x = ScoreInputs(logits, head_kind='ibe', background_index=0)
    s_sum = fg.exp().sum(dim=1)
    torch.testing.assert_close(
        build_scorer('background')(x), (1.0 / (1.0 + s_sum**2)).float())
    x = ScoreInputs(logits, head_kind='scribe', background_index=0)
    torch.testing.assert_close(
        build_scorer('background')(x), torch.sigmoid(bg[:, 0]).float())


def test_background_needs_an_ibe_head():
    with pytest.raises(UnsupportedScorerError, match='IBE or SCrIBE'):
        build_scorer('background')(make_inputs())


def test_embedding_scorers_name_what_is_missing():
    x = ScoreInputs(torch.randn(1, 3, 2, 2), head_kind='mask')
    for name in ('norm', 'n_max_logit', 'n_energy'):
        with pytest.raises(UnsupportedScorerError,
                           match=f"'{name}' is an embedding scorer: it needs"
                           ' the input of a final 1x1 linear classifier'):
            build_scorer(name)(x)


def test_sml_stream_equals_concatenated():
    g = torch.Generator().manual_seed(2)
    batches = [torch.randn(2, 4, 5, 6, generator=g) * (i + 1) + i
               for i in range(5)]
    sml = StandardizedMaxLogit().fit(batches)
    allv = torch.cat(batches)
    max_logit, label = allv.max(dim=1)
    for c in range(4):
        v = max_logit[label == c].double().numpy()
        assert sml.stats.count[c] == v.size
        assert sml.mean[c] == pytest.approx(v.mean(), rel=1e-9)
        assert sml.std[c] == pytest.approx(v.std(), rel=1e-9)
    # score: -(max - mu_k) / sigma_k
    x = ScoreInputs(allv[:1])
    m, k = allv[:1].max(dim=1)
    expected = -(m.double() - torch.tensor(sml.mean)[k]) / torch.tensor(
        sml.std)[k]
    torch.testing.assert_close(sml(x), expected.float())


def test_sml_save_load_roundtrip(tmp_path):
    sml = StandardizedMaxLogit().fit([torch.randn(3, 4, 8, 8)])
    path = str(tmp_path / 'sml.json')
    sml.save(path)
    loaded = build_scorer(dict(type='sml', stats_file=path))
    np.testing.assert_allclose(loaded.mean, sml.mean)
    np.testing.assert_allclose(loaded.std, sml.std)


def test_sml_errors():
    with pytest.raises(RuntimeError, match='no statistics'):
        build_scorer('sml')(make_inputs())
    with pytest.raises(FileNotFoundError, match='nope.json'):
        build_scorer(dict(type='sml', stats_file='nope.json'))
    sml = StandardizedMaxLogit().fit([torch.randn(2, 4, 3, 3)])
    with pytest.raises(ValueError, match='fitted on 4 classes'):
        sml(make_inputs(c=5))


@pytest.mark.parametrize('cfg, match', [
    (dict(type='energy', temperature=0.0), 'temperature.*> 0'),
    (dict(type='energy', temperature=-1), 'temperature'),
    (dict(type='n_energy', temperature=float('nan')), 'temperature'),
    (dict(type='n_energy', delta=1.5), r'delta.*\[0, 1\]'),
    (dict(type='n_max_logit', delta=-0.1), 'delta'),
    (dict(type='n_energy', eta='big'), 'eta'),
    (dict(type='n_max_logit', use_bias=1), 'use_bias'),
    (dict(type='sml', num_classes=0), 'num_classes'),
    (dict(type='sml', min_std=0), 'min_std'),
])
def test_bad_arguments_are_named(cfg, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build_scorer(cfg)


def test_unknown_scorer_lists_choices():
    with pytest.raises(ValueError, match="unknown scorer 'msq'.*msp"):
        build_scorer('msq')


def test_every_registered_scorer_documents_its_args():
    import inspect
    for name, cls in OOD_SCORERS.module_dict.items():
        doc = inspect.getdoc(cls)
        assert 'References:' in doc, name
        assert 'Shape:' in doc, name
        assert 'higher = more ood' in doc.lower(), name
        params = [
            p.name for p in inspect.signature(cls).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        for p in params:
            assert f'    {p}:' in doc, f'{name}: `{p}` not documented'
        if params:
            assert 'Args:' in doc, name
