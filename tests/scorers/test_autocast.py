"""Mixed precision without a GPU: the per-pixel scorers under CPU autocast
(bfloat16) and on half-precision inputs, with logits large enough (60-90)
that a logsumexp in float16 would overflow, and the scores an autocast
forward pass leaves in ``data_sample.ood_scores``."""
import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from scipy.stats import spearmanr

from conftest import zoo_model_config
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg_ood.models import OODScoring
from mmseg_ood.scorers import ScoreInputs, StandardizedMaxLogit, build_scorer

SCORERS = ['msp', 'entropy', 'max_logit', 'energy', 'norm', 'n_max_logit',
           'n_energy', 'gen', 'sml']
HALF = [torch.bfloat16, torch.float16]


def large_inputs(dtype=torch.float32, head_kind='softmax', seed=0):
    """Logits ``W z + b`` of 19 classes on 2 x 16 x 16 pixels, spanning
    about -130 to 130 (``exp(90)`` is past float16's 65504 and ``exp(89)``
    past float32's largest value: a logsumexp without the max shift
    overflows)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 64, 16, 16, generator=g) * 3
    w = torch.randn(19, 64, generator=g)
    b = torch.randn(19, generator=g)
    s = torch.einsum('cd,ndhw->nchw', w, z) + b.view(1, -1, 1, 1)
    assert 88 < s.abs().max() < 150
    return ScoreInputs(s.to(dtype), z.to(dtype), w.to(dtype), b.to(dtype),
                       head_kind=head_kind,
                       background_index=0 if head_kind != 'softmax' else None)


def scorer(name):
    if name != 'sml':
        return build_scorer(name)
    return StandardizedMaxLogit().fit([large_inputs(seed=1).logits])


def rank_agreement(a, b):
    """Spearman's rho of two score maps over their pixels."""
    return spearmanr(a.reshape(-1).numpy(), b.reshape(-1).numpy())[0]


@pytest.mark.parametrize('name', SCORERS)
def test_float32_inputs_under_autocast_score_as_without(name):
    """The scorers widen to float32 themselves: autocast (which would run a
    matmul or conv in bfloat16) changes nothing on float32 inputs."""
    sc = scorer(name)
    ref = sc(large_inputs())
    inputs = large_inputs()  # built outside: its einsum would be bfloat16
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = sc(inputs)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('dtype', HALF, ids=['bf16', 'fp16'])
@pytest.mark.parametrize('name', SCORERS)
def test_half_precision_inputs_give_finite_scores_that_rank_alike(name,
                                                                 dtype):
    """What an autocast forward pass hands the scorers: half-precision
    logits and embeddings. The scores are float32, finite (no overflow of
    the energies at logits near 130), equal to the float32 computation on
    the same (rounded) values - no error is added inside the scorer -, and
    rank the pixels as the scores of the unrounded inputs do."""
    sc = scorer(name)
    half = large_inputs(dtype)
    widened = ScoreInputs(*(t.float() for t in (
        half.logits, half.embeddings, half.cls_weight, half.cls_bias)))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = sc(half)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, sc(widened), rtol=1e-5, atol=1e-5)
    assert rank_agreement(out, sc(large_inputs())) > 0.99


@pytest.mark.parametrize('dtype', HALF, ids=['bf16', 'fp16'])
def test_energy_of_large_half_logits_does_not_overflow(dtype):
    """-logsumexp(s) with s = 60..90: exp(90) is inf in float16 (and in
    float32 without the max shift); the energy is about -max s."""
    s = torch.tensor([[90.0, 88.0, 60.0], [-90.0, -88.0, 62.0]])
    for name in ('energy', 'max_logit'):
        out = build_scorer(name)(ScoreInputs(s.to(dtype)))
        assert torch.isfinite(out).all()
        assert out[0].item() == pytest.approx(-90.127, abs=0.5)
    out = build_scorer('msp')(ScoreInputs(s.to(dtype)))
    assert torch.isfinite(out).all() and (out >= 0).all()


@pytest.mark.parametrize('kind', ['ibe', 'scribe'])
def test_background_scorer_under_autocast(kind):
    inputs = large_inputs(torch.bfloat16, kind)
    ref = build_scorer('background')(ScoreInputs(
        inputs.logits.float(), head_kind=kind, background_index=0))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = build_scorer('background')(inputs)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)


@pytest.fixture(scope='module')
def deeplab():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(zoo_model_config(
        'mmseg::deeplabv3plus/'
        'deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py').to_dict()))
    model.init_weights()
    # logits of a trained model's spread (tens), not the near-uniform
    # softmax of random weights, whose entropy ranks only rounding noise
    model.decode_head.conv_seg.weight.data *= 30
    return model.eval()


def test_autocast_forward_keeps_float32_score_maps(deeplab):
    """An autocast forward pass computes bfloat16 class scores; the score
    maps appended to them stay float32 (not rounded to bfloat16, where
    most pixels of a narrow-range score would tie) and rank like the
    float32 forward pass's."""
    h, w = 64, 128
    img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(0))

    def run(amp):
        data = dict(inputs=[img], data_samples=[SegDataSample(
            metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))])
        with OODScoring(deeplab, SCORERS[:-2]), torch.no_grad(), \
                torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            return deeplab.test_step(data)[0]

    ref, out = run(False), run(True)
    assert out.seg_logits.data.dtype == torch.float32
    for name, s in out.ood_scores.items():
        assert s.dtype == torch.float32 and torch.isfinite(s).all(), name
        # values off the bfloat16 grid: the maps were not rounded to it
        assert (s.bfloat16().float() != s).any(), name
        assert rank_agreement(s, ref.ood_scores[name]) > 0.9, name
    agree = (out.pred_sem_seg.data == ref.pred_sem_seg.data).float().mean()
    assert agree > 0.9
    assert np.isfinite(out.seg_logits.data.numpy()).all()
