"""Scorers beyond the thesis baselines: GEN (Liu et al., CVPR 2023) and SML's
boundary suppression and dilated smoothing (Jung et al., ICCV 2021,
sec. 3.2-3.3), on hand-computed examples."""
import json
import math

import numpy as np
import pytest
import torch

import mmseg_ood.scorers as scorers
from mmseg_ood.scorers import (GeneralizedEntropy, ScoreInputs,
                               StandardizedMaxLogit, build_scorer)


# GEN -----------------------------------------------------------------------
def gen(logits, **kwargs):
    return build_scorer(dict(type='gen', **kwargs))(ScoreInputs(logits))


def test_gen_is_registered_and_exported():
    assert isinstance(build_scorer('gen'), GeneralizedEntropy)
    assert 'GeneralizedEntropy' in scorers.__all__
    assert build_scorer('gen').gamma == 0.1  # the paper's default
    assert build_scorer('gen').top_m == 100


def test_gen_two_classes_by_hand():
    # logits (log 3, 0): p = (3/4, 1/4), p (1 - p) = 3/16 for both classes
    s = torch.tensor([[math.log(3.0), 0.0]], dtype=torch.float64)
    # gamma = 1/2: 2 * sqrt(3/16) = sqrt(3) / 2
    assert gen(s, gamma=0.5).item() == pytest.approx(math.sqrt(3) / 2,
                                                      rel=1e-6)
    # default gamma = 0.1: 2 * (3/16)^0.1 = 1.6917264
    assert gen(s).item() == pytest.approx(1.6917264, rel=1e-6)
    # top_m = 1: only the top class, sqrt(3) / 4
    assert gen(s, gamma=0.5, top_m=1).item() == pytest.approx(
        math.sqrt(3) / 4, rel=1e-6)


def test_gen_top_m_truncation_by_hand():
    # p = (0.6, 0.3, 0.1); gamma = 1/2: terms sqrt(0.6 * 0.4) = 0.4898979,
    # sqrt(0.3 * 0.7) = 0.4582576, sqrt(0.1 * 0.9) = 0.3
    s = torch.log(torch.tensor([[0.1, 0.6, 0.3]], dtype=torch.float64))
    full = 0.4898979 + 0.4582576 + 0.3                       # 1.2481555
    assert gen(s, gamma=0.5, top_m=None).item() == pytest.approx(full,
                                                                  rel=1e-6)
    assert gen(s, gamma=0.5, top_m=3).item() == pytest.approx(full, rel=1e-6)
    assert gen(s, gamma=0.5, top_m=2).item() == pytest.approx(0.9481555,
                                                              rel=1e-6)
    assert gen(s, gamma=0.5, top_m=1).item() == pytest.approx(0.4898979,
                                                              rel=1e-6)
    # M larger than C uses all C
    assert gen(s, gamma=0.5, top_m=7).item() == pytest.approx(full, rel=1e-6)


@pytest.mark.parametrize('hw', [(), (3, 4)], ids=['NC', 'NCHW'])
def test_gen_shapes_dtype_and_shift_invariance(hw):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 6, *hw, generator=g, dtype=torch.float64) * 3
    out = gen(s, top_m=4)
    assert out.shape == (2, *hw) and out.dtype == torch.float32
    torch.testing.assert_close(gen(s + 123.25, top_m=4), out)
    assert not torch.allclose(gen(s * 2.0, top_m=4), out, atol=1e-3)


def test_gen_peaked_lower_than_flat_and_uniform_is_the_maximum():
    peaked = torch.tensor([[9.0, 0.0, 0.0, 0.0]])
    flat = torch.tensor([[1.0, 1.0, 1.0, 1.1]])
    uniform = torch.zeros(1, 4)
    assert gen(peaked).item() < gen(flat).item() < gen(uniform).item()
    # uniform: 4 * (1/4 * 3/4)^0.1
    assert gen(uniform).item() == pytest.approx(4 * (3 / 16)**0.1, rel=1e-6)


def test_gen_is_finite_at_saturated_logits():
    s = torch.tensor([[1000.0, 0.0, 0.0], [0.0, -1000.0, -1000.0],
                      [1e30, 0.0, 0.0], [-1e30, 0.0, 0.0],
                      [80.0, float('-inf'), 0.0]])
    for kwargs in (dict(), dict(gamma=0.5, top_m=1), dict(top_m=None)):
        out = gen(s, **kwargs)
        assert torch.isfinite(out).all() and (out >= 0).all(), kwargs
    out = gen(s[[0, 1, 3, 4]].half())       # 1e30 overflows float16 to inf
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # (100, 0): p_0 rounds to 1 in float32, but 1 - p_0 = e^-100 exactly
    # enough: both terms are (e^-100)^0.1 = e^-10, G = 2 e^-10
    s = torch.tensor([[100.0, 0.0]])
    assert gen(s).item() == pytest.approx(2 * math.exp(-10.0), rel=1e-4)


def test_gen_uses_the_full_vector_of_ibe_and_scribe_heads():
    g = torch.Generator().manual_seed(1)
    fg = torch.randn(2, 4, 3, 3, generator=g)
    logits = torch.cat([-torch.logsumexp(fg, 1, keepdim=True), fg], dim=1)
    plain = build_scorer('gen')(ScoreInputs(logits))
    for kind in ('ibe', 'scribe'):
        x = ScoreInputs(logits, head_kind=kind, background_index=0)
        torch.testing.assert_close(build_scorer('gen')(x), plain)
    assert not torch.allclose(build_scorer('gen')(ScoreInputs(fg)), plain,
                              atol=1e-3)


@pytest.mark.parametrize('cfg, error, match', [
    (dict(gamma=0.0), ValueError, r'gamma.*> 0'),
    (dict(gamma=1.0), ValueError, r'gamma.*\(0, 1\)'),
    (dict(gamma=1.5), ValueError, r'gamma.*\(0, 1\)'),
    (dict(gamma=-0.1), ValueError, 'gamma'),
    (dict(gamma=float('nan')), ValueError, 'gamma'),
    (dict(gamma='0.1'), TypeError, 'gamma'),
    (dict(gamma=True), TypeError, 'gamma'),
    (dict(top_m=0), ValueError, 'top_m.*>= 1'),
    (dict(top_m=-3), ValueError, 'top_m'),
    (dict(top_m=2.0), TypeError, 'top_m'),
    (dict(top_m=True), TypeError, 'top_m'),
])
def test_gen_bad_arguments_are_named(cfg, error, match):
    with pytest.raises(error, match=match):
        build_scorer(dict(type='gen', **cfg))


def test_gen_needs_two_classes():
    with pytest.raises(ValueError, match='at least 2 classes'):
        gen(torch.zeros(2, 1, 3, 3))


# SML: boundary suppression and dilated smoothing ---------------------------
def unit_sml(num_classes=2, **kwargs):
    """SML whose statistics are mean 0, std 1 for every class, so the SML
    map is the max logit map itself."""
    return StandardizedMaxLogit(**kwargs).load_state_dict(
        dict(count=[1.0] * num_classes, mean=[0.0] * num_classes,
             m2=[1.0] * num_classes))


def two_class_logits(max_logit, class1_from_column):
    """(1, 2, H, W) logits whose max is ``max_logit`` and whose prediction
    is class 0 left of ``class1_from_column``, class 1 from it on."""
    other = max_logit - 1.0
    class1 = torch.zeros_like(max_logit, dtype=torch.bool)
    class1[:, class1_from_column:] = True
    l0 = torch.where(class1, other, max_logit)
    l1 = torch.where(class1, max_logit, other)
    return torch.stack([l0, l1])[None]


# max logit map, 5x5; class 0 in columns 0-1, class 1 in columns 2-4, so
# the boundary (pixels with a differently predicted 8-neighbour) is
# columns 1 and 2
MAP = torch.tensor([[1.0, -7.0, -9.0, 10.0, 100.0],
                    [2.0, -7.0, -9.0, 20.0, 200.0],
                    [3.0, -7.0, -9.0, 30.0, 300.0],
                    [4.0, -7.0, -9.0, 40.0, 400.0],
                    [5.0, -7.0, -9.0, 50.0, 500.0]])


def test_boundary_suppression_one_iteration_by_hand():
    logits = two_class_logits(MAP, 2)
    sml = unit_sml(boundary_suppression=True, boundary_width=1,
                   boundary_iterations=1)
    # band = columns 1, 2; column 1 takes the mean of its in-image
    # neighbours in column 0, column 2 of those in column 3:
    # (1+2)/2, (1+2+3)/3, (2+3+4)/3, (3+4+5)/3, (4+5)/2 and
    # (10+20)/2, (10+20+30)/3, ..., (40+50)/2
    expected = MAP.clone()
    expected[:, 1] = torch.tensor([1.5, 2.0, 3.0, 4.0, 4.5])
    expected[:, 2] = torch.tensor([15.0, 20.0, 30.0, 40.0, 45.0])
    torch.testing.assert_close(sml(ScoreInputs(logits)), -expected[None])


def test_boundary_suppression_shrinking_band_by_hand():
    logits = two_class_logits(MAP, 2)
    sml = unit_sml(boundary_suppression=True, boundary_width=2,
                   boundary_iterations=2)
    # iteration 0: band of width 2 per side = columns 0-3 (the boundary
    # dilated by 1); only column 3 has non-band neighbours (column 4):
    # (100+200)/2, 200, 300, 400, (400+500)/2
    col3 = torch.tensor([150.0, 200.0, 300.0, 400.0, 450.0])
    # iteration 1 (last): band = columns 1, 2; column 1 as with one
    # iteration, column 2 from the updated column 3:
    # (150+200)/2, (150+200+300)/3, (200+300+400)/3, (300+400+450)/3,
    # (400+450)/2
    expected = MAP.clone()
    expected[:, 1] = torch.tensor([1.5, 2.0, 3.0, 4.0, 4.5])
    expected[:, 2] = torch.tensor([175.0, 650.0 / 3, 300.0, 1150.0 / 3,
                                   425.0])
    expected[:, 3] = col3
    torch.testing.assert_close(sml(ScoreInputs(logits)), -expected[None])


def test_boundary_suppression_uses_the_statistics_then_negates():
    # class 1 standardized with mean 10, std 2: the band averages SML
    # values, not max logits
    logits = two_class_logits(MAP, 2)
    sml = StandardizedMaxLogit(
        boundary_suppression=True, boundary_width=1,
        boundary_iterations=1).load_state_dict(
            dict(count=[1.0, 1.0], mean=[0.0, 10.0], m2=[1.0, 4.0]))
    expected = MAP.clone()
    expected[:, 2:] = (expected[:, 2:] - 10.0) / 2.0   # SML of class 1
    expected[:, 1] = torch.tensor([1.5, 2.0, 3.0, 4.0, 4.5])
    # column 2: the mean of column 3's SML, ((10+20)/2 - 10) / 2, ...
    expected[:, 2] = torch.tensor([5.0, 10.0, 20.0, 30.0, 35.0]) / 2.0
    torch.testing.assert_close(sml(ScoreInputs(logits)), -expected[None])


def blocky_logits(seed, n=2, c=3, blocks=(4, 5), block=4):
    """(n, c, H, W) logits whose prediction is constant on ``block`` x
    ``block`` squares (random classes), with a random max logit: class
    regions with straight edges, corners and diagonal contacts."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.randint(c, (n, *blocks), generator=g)
    classes = classes.repeat_interleave(block, 1).repeat_interleave(block, 2)
    noise = torch.randn(n, c, blocks[0] * block, blocks[1] * block,
                        generator=g)
    onehot = torch.nn.functional.one_hot(classes, c).permute(0, 3, 1, 2)
    return noise + 6.0 * onehot


def test_boundary_does_not_depend_on_the_class_order():
    # classes touching only diagonally must be a boundary on both sides
    logits = blocky_logits(3)
    perm = torch.tensor([2, 0, 1])
    sml = unit_sml(3, boundary_suppression=True, boundary_width=2,
                   boundary_iterations=1)
    out = sml(ScoreInputs(logits))
    torch.testing.assert_close(sml(ScoreInputs(logits[:, perm])), out)
    assert not torch.allclose(out, unit_sml(3)(ScoreInputs(logits)))


def test_boundary_suppression_leaves_a_single_class_map_alone():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(1, 3, 6, 7, generator=g)
    logits[:, 0] += 50.0                              # class 0 everywhere
    plain = unit_sml(3)(ScoreInputs(logits))
    out = unit_sml(3, boundary_suppression=True)(ScoreInputs(logits))
    torch.testing.assert_close(out, plain)


def smoothing_sml(**kwargs):
    return unit_sml(dilated_smoothing=True, **kwargs)


def single_class(max_logit):
    """(1, 2, H, W) logits predicting class 0 everywhere."""
    return torch.stack([max_logit, max_logit.new_full(max_logit.shape,
                                                      -1e3)])[None]


def test_dilated_smoothing_of_a_constant_is_the_constant_everywhere():
    # replicate padding: the border pixels too
    logits = single_class(torch.full((9, 11), 2.5))
    sml = StandardizedMaxLogit(dilated_smoothing=True).load_state_dict(
        dict(count=[1.0, 1.0], mean=[0.5, 0.0], m2=[4.0, 1.0]))
    # SML = (2.5 - 0.5) / 2 = 1
    torch.testing.assert_close(sml(ScoreInputs(logits)),
                               torch.full((1, 9, 11), -1.0))


def gaussian(kernel, sigma):
    taps = np.arange(kernel) - (kernel - 1) / 2
    g = np.exp(-(taps[:, None]**2 + taps[None, :]**2) / (2 * sigma**2))
    return g / g.sum()


@pytest.mark.parametrize('kernel, sigma, dilation', [(7, 1.0, 6),
                                                     (5, 2.0, 2),
                                                     (3, 0.5, 1)])
def test_dilated_smoothing_of_a_delta_is_the_dilated_kernel(
        kernel, sigma, dilation):
    size, c = 41, 20
    delta = torch.zeros(size, size, dtype=torch.float64)
    delta[c, c] = 1.0
    sml = smoothing_sml(smoothing_kernel=kernel, smoothing_sigma=sigma,
                        smoothing_dilation=dilation)
    out = -sml(ScoreInputs(single_class(delta)))[0].double().numpy()
    expected = np.zeros((size, size))
    half = (kernel - 1) // 2
    taps = c + dilation * np.arange(-half, half + 1)
    expected[np.ix_(taps, taps)] = gaussian(kernel, sigma)
    np.testing.assert_allclose(out, expected, atol=1e-7)


def test_dilated_smoothing_replicates_the_border():
    # a ramp 10 + x along x, kernel 3, sigma 1, dilation 1: the kernel is
    # separable and the map constant along y, so the result is the 1-D
    # smoothing along x, with weights g(0) = 1 / (1 + 2 e^-1/2) and
    # g(+-1) = e^-1/2 / (1 + 2 e^-1/2) = 0.2740686. The interior keeps the
    # ramp; at the left border the pixel left of column 0 repeats column 0:
    # g(-1) * 10 + g(0) * 10 + g(1) * 11 = 10 + g(1), at the right border
    # 14 - g(1). (Reflect padding would give 10 + 2 g(1); zero padding
    # 10 + g(1) - 10 g(-1) and lower rows at the top and bottom.)
    ramp = torch.arange(5.0).repeat(5, 1)
    sml = smoothing_sml(smoothing_kernel=3, smoothing_sigma=1.0,
                        smoothing_dilation=1)
    out = -sml(ScoreInputs(single_class(ramp + 10.0)))[0] - 10.0
    g1 = math.exp(-0.5) / (1 + 2 * math.exp(-0.5))
    assert g1 == pytest.approx(0.2740686, rel=1e-6)
    expected = torch.tensor([g1, 1.0, 2.0, 3.0, 4.0 - g1]).repeat(5, 1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def numpy_smoothing(x, kernel, sigma, dilation):
    """Independent reference: explicit sum over the taps, edge padding."""
    half = (kernel - 1) // 2
    pad = dilation * half
    xp = np.pad(x, pad, mode='edge')
    g = gaussian(kernel, sigma)
    out = np.zeros_like(x)
    h, w = x.shape
    for a in range(kernel):
        for b in range(kernel):
            out += g[a, b] * xp[a * dilation:a * dilation + h,
                                b * dilation:b * dilation + w]
    return out


def test_smoothing_follows_suppression():
    """Both on: the paper's order, smoothing of the suppressed map."""
    logits = blocky_logits(5)
    common = dict(boundary_width=2, boundary_iterations=2,
                  smoothing_kernel=5, smoothing_sigma=1.5,
                  smoothing_dilation=2)
    suppressed = unit_sml(3, boundary_suppression=True, **common)(
        ScoreInputs(logits))
    assert not torch.allclose(suppressed, unit_sml(3)(ScoreInputs(logits)))
    both = unit_sml(3, boundary_suppression=True, dilated_smoothing=True,
                    **common)(ScoreInputs(logits))
    for i in range(2):
        expected = numpy_smoothing(suppressed[i].double().numpy(), 5, 1.5, 2)
        np.testing.assert_allclose(both[i].numpy(), expected, rtol=1e-5,
                                   atol=1e-5)
    # each image of a batch is refined on its own
    single = unit_sml(3, boundary_suppression=True, dilated_smoothing=True,
                      **common)(ScoreInputs(logits[1:]))
    torch.testing.assert_close(both[1:], single)


def test_defaults_off_give_exactly_the_plain_sml(tmp_path):
    g = torch.Generator().manual_seed(6)
    batches = [torch.randn(2, 4, 6, 7, generator=g) + i for i in range(3)]
    plain = StandardizedMaxLogit().fit(batches)
    off = StandardizedMaxLogit(boundary_width=8, boundary_iterations=2,
                               smoothing_kernel=3, smoothing_sigma=2.0,
                               smoothing_dilation=3).fit(batches)
    x = ScoreInputs(batches[0])
    m, k = batches[0].max(dim=1)
    formula = -(m.double() - torch.tensor(plain.mean)[k]) / torch.tensor(
        plain.std)[k]
    torch.testing.assert_close(plain(x), formula.float())
    assert torch.equal(off(x), plain(x))
    on = StandardizedMaxLogit(boundary_suppression=True,
                              dilated_smoothing=True).fit(batches)
    assert not torch.allclose(on(x), plain(x), atol=1e-3)
    # the statistics file does not depend on the options
    plain.save(str(tmp_path / 'plain.json'))
    on.save(str(tmp_path / 'on.json'))
    assert json.loads((tmp_path / 'plain.json').read_text()) == json.loads(
        (tmp_path / 'on.json').read_text())
    # (N, C) logits still score without the options
    assert plain(ScoreInputs(torch.randn(3, 4))).shape == (3, )


def test_empty_like_keeps_the_options():
    sml = StandardizedMaxLogit(boundary_suppression=True, boundary_width=6,
                               boundary_iterations=3, dilated_smoothing=True,
                               smoothing_kernel=5, smoothing_sigma=0.5,
                               smoothing_dilation=2, min_std=1e-3)
    empty = sml.empty_like()
    for name in ('boundary_suppression', 'boundary_width',
                 'boundary_iterations', 'dilated_smoothing',
                 'smoothing_kernel', 'smoothing_sigma', 'smoothing_dilation',
                 'min_std'):
        assert getattr(empty, name) == getattr(sml, name), name
    assert empty.stats is None


@pytest.mark.parametrize('option', ['boundary_suppression',
                                    'dilated_smoothing'])
def test_spatial_options_refuse_nc_logits(option):
    sml = unit_sml(4, **{option: True})
    with pytest.raises(ValueError, match=r'spatial logits \(N, C, H, W\)'):
        sml(ScoreInputs(torch.randn(3, 4)))


@pytest.mark.parametrize('cfg, error, match', [
    (dict(boundary_suppression=1), TypeError, 'boundary_suppression'),
    (dict(boundary_suppression='yes'), TypeError, 'boundary_suppression'),
    (dict(dilated_smoothing=None), TypeError, 'dilated_smoothing'),
    (dict(boundary_width=0), ValueError, 'boundary_width.*>= 1'),
    (dict(boundary_width=4.0), TypeError, 'boundary_width'),
    (dict(boundary_width=True), TypeError, 'boundary_width'),
    (dict(boundary_iterations=0), ValueError, 'boundary_iterations.*>= 1'),
    (dict(boundary_iterations='4'), TypeError, 'boundary_iterations'),
    (dict(boundary_width=4, boundary_iterations=3), ValueError,
     '`boundary_width` must be a multiple of `boundary_iterations`'),
    (dict(smoothing_kernel=4), ValueError, 'smoothing_kernel.*odd'),
    (dict(smoothing_kernel=0), ValueError, 'smoothing_kernel'),
    (dict(smoothing_kernel=7.0), TypeError, 'smoothing_kernel'),
    (dict(smoothing_sigma=0.0), ValueError, r'smoothing_sigma.*> 0'),
    (dict(smoothing_sigma=-1), ValueError, 'smoothing_sigma'),
    (dict(smoothing_sigma=float('inf')), ValueError, 'smoothing_sigma'),
    (dict(smoothing_sigma='1'), TypeError, 'smoothing_sigma'),
    (dict(smoothing_dilation=0), ValueError, 'smoothing_dilation.*>= 1'),
    (dict(smoothing_dilation=1.5), TypeError, 'smoothing_dilation'),
])
def test_sml_bad_options_are_named(cfg, error, match):
    with pytest.raises(error, match=match):
        build_scorer(dict(type='sml', **cfg))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cpu_and_cuda_agree():
    logits = blocky_logits(7, c=5)
    sml = unit_sml(5, boundary_suppression=True, dilated_smoothing=True)
    torch.testing.assert_close(sml(ScoreInputs(logits.cuda())).cpu(),
                               sml(ScoreInputs(logits)), rtol=1e-5,
                               atol=1e-5)
    torch.testing.assert_close(gen(logits.cuda()).cpu(), gen(logits),
                               rtol=1e-5, atol=1e-6)
