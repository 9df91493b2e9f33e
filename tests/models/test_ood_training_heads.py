"""IBE / SCrIBE heads: the papers' closed forms and model-zoo heads."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from conftest import zoo_model_config
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg_ood.implicit_background import (foreground_logits,
                                           implicit_background_logits)
from mmseg_ood.models import OODScoring


def test_background_logit_is_minus_logsumexp_at_its_index():
    fg = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    for idx in range(5):
        full = implicit_background_logits(fg, idx)
        assert full.shape == (2, 5, 3, 3)
        assert torch.allclose(full[:, idx], -torch.logsumexp(fg, 1))
        assert torch.equal(foreground_logits(full, idx), fg)


@pytest.mark.parametrize('index', [-1, 5, 1.0, True])
def test_background_index_out_of_range_is_an_error(index):
    with pytest.raises(ValueError, match='background_index'):
        implicit_background_logits(torch.zeros(1, 4, 2, 2), index)


def test_non_distinctiveness_exact_bound_on_random_inputs():
    """v_BG = -logsumexp(v_FG) <= -max v_FG: background and the best
    foreground class are never both positive, and max v >= -log(k-1)/2."""
    torch.manual_seed(0)
    for k in (2, 3, 21, 200):
        fg = torch.randn(4096, k - 1, dtype=torch.float64) * 5 - 2
        full = implicit_background_logits(fg, 0)
        bg, best = full[:, 0], fg.max(1).values
        assert (bg <= -best + 1e-12).all()
        assert not ((bg > 0) & (best > 0)).any()
        assert (full.max(1).values >= -math.log(k - 1) / 2 - 1e-12).all()
    # the bound is attained: all foreground logits equal to -log(k-1)/2
    k = 21
    fg = torch.full((1, k - 1), -math.log(k - 1) / 2, dtype=torch.float64)
    full = implicit_background_logits(fg, 0)
    assert torch.allclose(full.max(1).values,
                          torch.tensor([-math.log(k - 1) / 2],
                                       dtype=torch.float64))
    # theorem 2.1's `max v >= 0` fails with many slightly negative logits
    assert full.max() < 0


def _head(kind, k=5, dim=8, **extra):
    init_default_scope('mmseg')
    head = MODELS.build(
        dict(type=kind, background_index=0,
             head=dict(type='FCNHead', in_channels=dim, channels=dim,
                       num_convs=0, concat_input=False, dropout_ratio=0.0,
                       num_classes=k, **extra)))
    return head


def _samples(label):
    s = SegDataSample()
    s.gt_sem_seg = PixelData(data=label[None])
    return [s]


def test_ibe_gradient_at_background_pixel_is_scribe_eq_2():
    torch.manual_seed(0)
    fg = torch.randn(1, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    label = torch.zeros(2, 2, dtype=torch.long)  # every pixel background
    s = fg.detach().exp().sum(1, keepdim=True)
    closed = 2 * fg.detach().exp() * s / (s**2 + 1)
    ce = F.cross_entropy(implicit_background_logits(fg, 0), label[None],
                         reduction='sum')
    (grad, ) = torch.autograd.grad(ce, fg)
    assert torch.allclose(grad, closed, rtol=1e-12)
    # through IBEHead's own loss (mmseg CE: mean over the 4 pixels, divided
    # by avg_factor + float32 eps, hence the tolerance)
    head = _head('IBEHead')
    losses = head.loss_by_feat(implicit_background_logits(fg, 0),
                               _samples(label))
    losses['loss_ce'].backward()
    assert torch.allclose(fg.grad * 4, closed, rtol=1e-6)


def test_scribe_background_gradient_is_scribe_eq_4():
    head = _head('SCrIBEHead')
    assert head.loss_decode.use_sigmoid
    k = 5
    torch.manual_seed(0)
    fg = torch.randn(1, k - 1, 2, 2, dtype=torch.float64, requires_grad=True)
    label = torch.zeros(2, 2, dtype=torch.long)
    full = implicit_background_logits(fg, 0)
    # the background component's share alone: e^{v_n} / (1 + S)
    bg_term = F.binary_cross_entropy_with_logits(
        full[:, 0], torch.ones_like(full[:, 0]), reduction='sum')
    (g_bg, ) = torch.autograd.grad(bg_term, fg)
    e = fg.detach().exp()
    s = e.sum(1, keepdim=True)
    assert torch.allclose(g_bg, e / (1 + s), rtol=1e-10)
    # the head's loss: + each foreground component's own sigmoid term,
    # averaged over k components and 4 pixels by mmseg's sigmoid CE
    losses = head.loss_by_feat(implicit_background_logits(fg, 0),
                               _samples(label))
    losses['loss_ce'].backward()
    closed = e / (1 + s) + torch.sigmoid(fg.detach())
    assert torch.allclose(fg.grad * k * 4, closed, rtol=1e-6)


def test_scribe_needs_a_cross_entropy_loss():
    with pytest.raises(ValueError, match='no CrossEntropyLoss'):
        _head('SCrIBEHead', loss_decode=dict(type='DiceLoss'))


def test_wrapper_errors_name_the_field():
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match='background_index'):
        MODELS.build(dict(type='IBEHead', background_index=5,
                          head=dict(type='FCNHead', in_channels=4,
                                    channels=4, num_classes=5)))
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(dict(type='IBEHead',
                          head=dict(type='FCNHead', in_channels=4,
                                    channels=4, num_classes=1)))
    with pytest.raises(TypeError, match='head'):
        MODELS.build(dict(type='IBEHead', head='FCNHead'))


ZOO = {
    'fcn': 'fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'psp': 'pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'aspp': 'deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'deeplabv3plus':
    'deeplabv3plus/deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'upernet': 'upernet/upernet_r18_4xb2-40k_cityscapes-512x1024.py',
    'ocrnet': 'ocrnet/ocrnet_hr18s_4xb2-40k_cityscapes-512x1024.py',
    'segformer': 'segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
}


def _zoo_model(name, kind, background_index=0):
    model_cfg = zoo_model_config(ZOO[name])
    heads = model_cfg.decode_head
    last = heads[-1] if isinstance(heads, list) else heads
    k = last.num_classes
    wrapped = dict(type=kind, background_index=background_index, head=last)
    if isinstance(heads, list):
        heads[-1] = wrapped
    else:
        model_cfg.decode_head = wrapped
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model, k


@pytest.mark.parametrize('name', sorted(ZOO))
def test_wrapped_model_zoo_heads_train_a_step_and_predict(name, tmp_path):
    kind = 'SCrIBEHead' if name in ('psp', 'segformer') else 'IBEHead'
    model, k = _zoo_model(name, kind, background_index=1)
    h = w = 64
    inputs = torch.rand(2, 3, h, w) * 255
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, k, (1, h, w)))
        samples.append(s)
    data = model.data_preprocessor(
        dict(inputs=list(inputs), data_samples=samples), training=True)
    model.train()
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for n, v in losses.items() if 'loss' in n)
    assert torch.isfinite(total)
    total.backward()
    head = model.decode_head[-1] if isinstance(
        model.decode_head, torch.nn.ModuleList) else model.decode_head
    assert type(head).__name__ == kind
    assert head.head.conv_seg.out_channels == k - 1
    assert head.head.conv_seg.weight.grad.abs().sum() > 0

    model.eval()
    data = model.data_preprocessor(
        dict(inputs=list(inputs), data_samples=samples), training=False)
    head_out = []
    hook = head.head.register_forward_hook(
        lambda m, a, o: head_out.append(implicit_background_logits(o, 1)))
    with torch.no_grad(), OODScoring(model, ['msp', 'background', 'norm']):
        out = model(data['inputs'], data['data_samples'], mode='predict')
    hook.remove()
    logits = out[0].seg_logits.data
    assert logits.shape == (k, h, w)
    assert set(out[0].ood_scores) == {'msp', 'background', 'norm'}
    # scores are computed on the k-vector at the head's resolution and
    # resized like the logits
    v = head_out[0][:1]
    bg = torch.softmax(v, 1)[:, 1:2] if kind == 'IBEHead' else \
        torch.sigmoid(v[:, 1:2])
    expected = F.interpolate(bg, size=(h, w), mode='bilinear',
                             align_corners=head.align_corners)[0, 0]
    assert torch.allclose(out[0].ood_scores['background'], expected,
                          atol=1e-6)

    # the checkpoint loads back into the same config
    path = tmp_path / 'ckpt.pth'
    torch.save(model.state_dict(), path)
    again, _ = _zoo_model(name, kind, background_index=1)
    again.load_state_dict(torch.load(path), strict=True)
    again.eval()
    with torch.no_grad():
        out2 = again(data['inputs'], data['data_samples'], mode='predict')
    assert torch.allclose(out2[0].seg_logits.data, logits, atol=1e-5)


def test_decoupled_scores_on_ibe_head_reinsert_the_background():
    """With delta = 1, eta = 1 and the bias kept, the decoupled logits are
    the head's logits, so n_max_logit equals max_logit on an IBE head."""
    model, k = _zoo_model('fcn', 'IBEHead')
    model.eval()
    x = torch.rand(1, 3, 32, 32) * 255
    s = SegDataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(32, 32),
                                    pad_shape=(32, 32)))
    data = model.data_preprocessor(dict(inputs=list(x), data_samples=[s]))
    scorers = dict(same=dict(type='n_max_logit', delta=1.0, use_bias=True),
                   max_logit='max_logit')
    with torch.no_grad(), OODScoring(model, scorers):
        out = model(data['inputs'], data['data_samples'], mode='predict')
    assert torch.allclose(out[0].ood_scores['same'],
                          out[0].ood_scores['max_logit'], atol=1e-4)
