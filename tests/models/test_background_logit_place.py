"""IBE / SCrIBE heads: the implicit background logit built before or after
mmseg resizes the logits (``background_logit``)."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from conftest import zoo_model_config
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg_ood.implicit_background import implicit_background_logits
from mmseg_ood.models import OODScoring

K = 5


def _head(kind='IBEHead', place='before_resize', bg=0):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    return MODELS.build(
        dict(type=kind, background_index=bg, background_logit=place,
             head=dict(type='FCNHead', in_channels=8, channels=8,
                       num_convs=0, concat_input=False, dropout_ratio=0.0,
                       num_classes=K)))


def _up(x, size):
    """mmseg's resize of the head (bilinear, align_corners=False)."""
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


def test_bad_place_is_one_line_naming_the_value():
    with pytest.raises(ValueError, match="background_logit.*'after'"):
        _head(place='after')


@pytest.mark.parametrize('bg', [0, 2])
def test_predict_by_feat_builds_background_where_told(bg):
    torch.manual_seed(1)
    fg = torch.randn(2, K - 1, 4, 4, dtype=torch.float64) * 3
    full = implicit_background_logits(fg, bg)
    metas = [dict(img_shape=(16, 16), pad_shape=(16, 16))] * 2
    up = _up(fg, (16, 16))
    after = _head(place='after_resize', bg=bg).predict_by_feat(full, metas)
    before = _head(place='before_resize', bg=bg).predict_by_feat(full, metas)
    fg_idx = [i for i in range(K) if i != bg]
    # the foreground logits are the resized ones in both settings
    assert torch.allclose(after[:, fg_idx], up, atol=1e-12)
    assert torch.allclose(before[:, fg_idx], up, atol=1e-12)
    # after: -logsumexp of the resized foreground; before: resized -lse
    assert torch.allclose(after[:, bg], -torch.logsumexp(up, dim=1),
                          atol=1e-12)
    assert torch.allclose(before[:, bg:bg + 1],
                          _up(-torch.logsumexp(fg, 1, keepdim=True),
                              (16, 16)), atol=1e-12)
    # -logsumexp is concave: the resized one is never above, and differs
    assert (before[:, bg] <= after[:, bg] + 1e-12).all()
    assert (after[:, bg] - before[:, bg]).abs().max() > 1e-2


def test_extra_channels_are_resized_as_they_are():
    """Score maps appended by OODScoring pass through, resized."""
    torch.manual_seed(2)
    fg = torch.randn(1, K - 1, 4, 4, dtype=torch.float64)
    maps = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    x = torch.cat([implicit_background_logits(fg, 0), maps], 1)
    out = _head(place='after_resize').predict_by_feat(
        x, [dict(img_shape=(8, 8), pad_shape=(8, 8))])
    assert out.shape == (1, K + 2, 8, 8)
    assert torch.allclose(out[:, K:], _up(maps, (8, 8)), atol=1e-12)
    assert torch.allclose(out[:, 0], -torch.logsumexp(out[:, 1:K], 1),
                          atol=1e-12)


@pytest.mark.parametrize('kind', ['IBEHead', 'SCrIBEHead'])
def test_loss_after_resize_is_on_full_resolution_logits(kind):
    torch.manual_seed(3)
    fg = torch.randn(1, K - 1, 4, 4, dtype=torch.float64) * 2
    label = torch.randint(0, K, (1, 16, 16))
    label[0, :2] = 255
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=label)
    full = implicit_background_logits(fg, 0)
    after = _head(kind, 'after_resize').loss_by_feat(full, [sample])
    before = _head(kind, 'before_resize').loss_by_feat(full, [sample])
    v = implicit_background_logits(_up(fg, (16, 16)), 0)   # by hand
    # mmseg's losses (avg_non_ignore=False): the sum over the valid
    # pixels divided by all 16 x 16 (sigmoid CE: and by the k components)
    if kind == 'IBEHead':
        expected = F.cross_entropy(v, label, ignore_index=255,
                                   reduction='sum') / 256
    else:
        valid = label[0] != 255
        target = F.one_hot(label[0].clamp(max=K - 1), K).permute(2, 0, 1)
        bce = F.binary_cross_entropy_with_logits(
            v[0], target.to(v), reduction='none')[:, valid]
        expected = bce.sum() / (K * 256)
    assert torch.allclose(after['loss_ce'].double(), expected, rtol=1e-5)
    assert not torch.allclose(before['loss_ce'].double(), expected,
                              rtol=1e-3)


def _segmentor(place):
    cfg = zoo_model_config('fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py')
    cfg.decode_head = dict(type='IBEHead', background_index=1,
                           background_logit=place, head=cfg.decode_head)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def test_segmentor_predict_and_checkpoints_are_interchangeable():
    before, after = _segmentor('before_resize'), _segmentor('after_resize')
    # the same parameters: one's checkpoint loads into the other
    after.load_state_dict(before.state_dict(), strict=True)
    h = w = 32
    x = torch.rand(1, 3, h, w) * 255
    s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                    pad_shape=(h, w)))
    data = before.data_preprocessor(dict(inputs=list(x), data_samples=[s]))
    outs = {}
    for name, model in (('before', before), ('after', after)):
        with torch.no_grad(), OODScoring(model, ['msp', 'background']):
            outs[name] = model(data['inputs'], [s.clone()], mode='predict')[0]
    v = outs['after'].seg_logits.data
    fg = torch.cat([v[:1], v[2:]])
    assert torch.allclose(v[1], -torch.logsumexp(fg, 0), atol=1e-5)
    vb = outs['before'].seg_logits.data
    assert torch.allclose(torch.cat([vb[:1], vb[2:]]), fg, atol=1e-5)
    assert (v[1] - vb[1]).abs().max() > 1e-4
    # the scorers read the head's k-vector before any resize: the same
    for n in ('msp', 'background'):
        assert torch.allclose(outs['after'].ood_scores[n],
                              outs['before'].ood_scores[n], atol=1e-6)
