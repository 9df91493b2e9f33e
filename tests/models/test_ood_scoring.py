"""Embedding capture and OOD scoring on real model-zoo heads."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope

from conftest import to_bn, zoo_model_config
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg_ood.errors import OODNotice
from mmseg_ood.models import EmbeddingCapture, OODScoring, final_decode_head
from mmseg_ood.scorers import BaseScorer, UnsupportedScorerError

SCORERS = ['msp', 'entropy', 'max_logit', 'energy', 'norm', 'n_max_logit',
           'n_energy']
# ResNet-18 where the model zoo has it: the heads are the same classes
ZOO = {
    'fcn': 'mmseg::fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'psp': 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'aspp':
    'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'deeplabv3plus': 'mmseg::deeplabv3plus/'
    'deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'upernet': 'mmseg::upernet/upernet_r18_4xb2-40k_cityscapes-512x1024.py',
    'ocrnet': 'mmseg::ocrnet/ocrnet_hr18s_4xb2-40k_cityscapes-512x1024.py',
    'segformer': 'mmseg::segformer/'
    'segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py',
    'dpt': 'mmseg::dpt/dpt_vit-b16_8xb2-160k_ade20k-512x512.py',
}


def build(cfg_model):
    init_default_scope('mmseg')
    to_bn(cfg_model)
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(cfg_model))
    model.init_weights()
    return model.eval()


def zoo_model(key, **test_cfg):
    return build(zoo_model_config(ZOO[key], **test_cfg).to_dict())


def batch(h, w, n=1, seed=0, flip=False):
    g = torch.Generator().manual_seed(seed)
    imgs = [torch.randint(0, 256, (3, h, w), generator=g).to(torch.uint8)
            for _ in range(n)]
    if flip:
        imgs = [im.flip(-1) for im in imgs]
    samples = [
        SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                    img_path=f'img{i}.png'))
        for i in range(n)
    ]
    return dict(inputs=imgs, data_samples=samples)


@pytest.fixture(scope='module', params=list(ZOO))
def zoo(request):
    return request.param, zoo_model(request.param)


def test_capture_reconstructs_logits(zoo):
    """s = W z + b holds for the captured z on every head family."""
    key, model = zoo
    head = final_decode_head(model)
    cap = EmbeddingCapture(head.conv_seg)
    out = {}
    handle = head.conv_seg.register_forward_hook(
        lambda m, a, o: out.setdefault('s', o.clone()))
    data = model.data_preprocessor(batch(64, 96), False)
    with torch.no_grad():
        model.predict(data['inputs'], data['data_samples'])
    handle.remove()
    z, s = cap.embeddings, out['s']
    assert z.shape[1] == head.conv_seg.in_channels
    recon = torch.einsum('cd,ndhw->nchw', cap.weight, z) + \
        cap.bias.view(1, -1, 1, 1)
    # float32 sums in another order: tolerance relative to the logit scale
    torch.testing.assert_close(recon, s, rtol=1e-4,
                               atol=1e-5 * float(s.abs().max()))
    cap.remove()


def test_scoring_keeps_predictions_and_fills_scores(zoo):
    key, model = zoo
    h, w = 61, 93  # padded to 64x96 by size_divisor=32
    with torch.no_grad():
        plain = model.test_step(batch(h, w, n=2))
        with OODScoring(model, SCORERS) as scoring:
            scored = model.test_step(batch(h, w, n=2))
    assert scoring.names == SCORERS
    for a, b in zip(plain, scored):
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data), key
        torch.testing.assert_close(a.seg_logits.data, b.seg_logits.data)
        assert set(b.ood_scores) == set(SCORERS)
        for name, m in b.ood_scores.items():
            assert m.shape == (h, w), (key, name)
            assert torch.isfinite(m).all(), (key, name)
    # hooks are gone after the block
    with torch.no_grad():
        again = model.test_step(batch(h, w))
    assert 'ood_scores' not in again[0]
    assert model.out_channels == plain[0].seg_logits.data.shape[0]


def test_score_maps_are_resized_like_the_logits():
    model = zoo_model('fcn')
    head = final_decode_head(model)
    data = batch(64, 96)
    with torch.no_grad():
        inputs = model.data_preprocessor(data, False)['inputs']
        s = head.forward(model.extract_feat(inputs))
        with OODScoring(model, ['max_logit', 'energy']):
            out = model.test_step(data)[0]
    for name, score in (('max_logit', -s.amax(1)),
                        ('energy', -torch.logsumexp(s, 1))):
        expected = F.interpolate(score[:, None], size=(64, 96),
                                 mode='bilinear', align_corners=False)[0, 0]
        torch.testing.assert_close(out.ood_scores[name], expected)


def test_maps_at_ori_shape_skip_a_resize_that_would_change_nothing():
    """Where the maps already have ``ori_shape`` OODScoring skips the
    resize; what mmseg's post-processing would do (a bilinear resize to the
    same size, with the segmentor's align_corners) gives the same maps."""
    from mmseg.models.utils import resize
    model = zoo_model('fcn')
    x = torch.randn(2, 7, 64, 96) * 1e3
    samples = batch(64, 96, n=2)['data_samples']
    for ac in (False, True):
        model.align_corners = ac
        out = OODScoring(model, ['msp'])._postprocess_maps(x, samples)
        for i in range(2):
            assert torch.equal(out[i], x[i])
            assert torch.equal(out[i], resize(
                x[i:i + 1], size=(64, 96), mode='bilinear',
                align_corners=ac, warning=False)[0])


def test_own_postprocess_result_also_treats_the_maps():
    """A segmentor overriding postprocess_result post-processes the maps
    too; its predictions stay those of the plain model."""
    model = zoo_model('fcn')
    base = type(model)

    class Own(base):
        def postprocess_result(self, seg_logits, data_samples=None):
            return super().postprocess_result(seg_logits, data_samples)

    h, w = 61, 93  # padded to 64x96, resized back
    with torch.no_grad():
        with OODScoring(model, SCORERS):
            ref = model.test_step(batch(h, w, n=2))
        model.__class__ = Own
        plain = model.test_step(batch(h, w, n=2))
        with OODScoring(model, SCORERS):
            own = model.test_step(batch(h, w, n=2))
        with OODScoring(model, ['energy']):  # one map: not binary logits
            single = model.test_step(batch(h, w))[0]
    model.__class__ = base
    for a, b, p in zip(ref, own, plain):
        assert torch.equal(b.pred_sem_seg.data, p.pred_sem_seg.data)
        assert torch.equal(b.seg_logits.data, p.seg_logits.data)
        for name in SCORERS:
            assert torch.equal(a.ood_scores[name], b.ood_scores[name]), name
    # (fewer channels to resize: float rounding may differ in the last bit)
    torch.testing.assert_close(single.ood_scores['energy'],
                               ref[0].ood_scores['energy'])


def test_slide_inference_scores_have_ori_shape():
    model = zoo_model('deeplabv3plus', mode='slide', crop_size=(32, 32),
                      stride=(21, 21))
    h, w = 61, 93
    with torch.no_grad():
        plain = model.test_step(batch(h, w))[0]
        with OODScoring(model, SCORERS):
            scored = model.test_step(batch(h, w))[0]
    assert torch.equal(plain.pred_sem_seg.data, scored.pred_sem_seg.data)
    for m in scored.ood_scores.values():
        assert m.shape == (h, w) and torch.isfinite(m).all()


def test_unsupported_scorers_are_refused_or_skipped():
    class NoClassifierHead(BaseDecodeHead):  # e.g. PointRend, K-Net
        def __init__(self, **kw):
            super().__init__(**kw)
            del self.conv_seg
            self.proj = nn.Conv2d(self.in_channels, self.num_classes, 3,
                                  padding=1)

        def forward(self, inputs):
            return self.proj(self._transform_inputs(inputs))

    MODELS.register_module('NoClassifierHeadForTest', module=NoClassifierHead,
                           force=True)
    model_cfg = zoo_model_config(ZOO['fcn'])
    model_cfg.decode_head = dict(
        type='NoClassifierHeadForTest', in_channels=512, in_index=3,
        channels=8, num_classes=5, init_cfg=None)
    model_cfg.auxiliary_head = None
    model = build(model_cfg.to_dict())
    with pytest.raises(UnsupportedScorerError,
                       match="'n_energy' is an embedding scorer.*"
                       r'NoClassifierHead \(class logits without a 1x1'):
        OODScoring(model, ['msp', 'n_energy'])
    with pytest.warns(OODNotice, match="skipping scorer 'n_energy'"):
        scoring = OODScoring(model, ['msp', 'energy', 'n_energy'],
                             strict=False)
    assert scoring.names == ['msp', 'energy']
    kept = []
    handle = model.decode_head.proj.register_forward_hook(
        lambda m, a, out: kept.append(out))
    try:
        with torch.no_grad(), scoring:
            out = model.test_step(batch(40, 56))[0]
    finally:
        handle.remove()
    # scored at the head's resolution (1/8 of the input padded to 64x64),
    # then resized and un-padded like the logits
    head_logits = kept[0]
    assert head_logits.shape[2:] == (8, 8)
    expected = F.interpolate(-torch.logsumexp(head_logits, 1, keepdim=True),
                             size=(64, 64), mode='bilinear',
                             align_corners=False)[0, 0, :40, :56]
    torch.testing.assert_close(out.ood_scores['energy'], expected)


def test_head_without_a_class_score_tensor_is_scored_after_its_resize():
    """A head whose predict_by_feat takes something else than one tensor
    (SAN's takes [mask_props, mask_logits]): scored from what it returns,
    and in slide inference stitched like the logits."""
    class ListHead(BaseDecodeHead):
        def __init__(self, **kw):
            super().__init__(**kw)
            del self.conv_seg
            self.proj = nn.Conv2d(self.in_channels, self.num_classes, 1)

        def forward(self, inputs):
            return [self.proj(self._transform_inputs(inputs))]

        def predict_by_feat(self, seg_logits, batch_img_metas):
            return super().predict_by_feat(seg_logits[0], batch_img_metas)

    MODELS.register_module('ListHeadForTest', module=ListHead, force=True)
    model_cfg = zoo_model_config(ZOO['fcn'])
    model_cfg.decode_head = dict(
        type='ListHeadForTest', in_channels=512, in_index=3, channels=8,
        num_classes=5, init_cfg=None)
    model_cfg.auxiliary_head = None
    model = build(model_cfg.to_dict())
    with torch.no_grad(), OODScoring(model, ['msp', 'energy']):
        out = model.test_step(batch(40, 56))[0]
    # scored at the input size, after the head's own resize
    torch.testing.assert_close(
        out.ood_scores['energy'], -torch.logsumexp(out.seg_logits.data, 0))
    assert model.out_channels == 5  # restored
    model.test_cfg = ConfigDict(mode='slide', crop_size=(32, 32),
                                stride=(24, 24))
    with torch.no_grad(), OODScoring(model, ['energy']):
        out = model.test_step(batch(40, 56))[0]
    assert out.ood_scores['energy'].shape == (40, 56)


def test_a_predict_that_raised_leaves_no_stale_state():
    """An exception inside predict (e.g. out of memory in a scorer) must not
    leave out_channels raised or captures behind for the next call."""
    model = zoo_model('deeplabv3plus')
    calls = []

    class Boom(BaseScorer):
        name = 'boom'

        def score(self, inputs):
            calls.append(1)
            if len(calls) == 1:
                raise MemoryError('boom')
            return inputs.logits[:, 0]

    channels = model.out_channels
    with torch.no_grad(), OODScoring(model, ['energy', Boom()]) as scoring:
        with pytest.raises(MemoryError):
            model.test_step(batch(32, 48))
        out = model.test_step(batch(32, 48))[0]
        assert scoring.names == ['energy', 'boom']
    assert model.out_channels == channels
    plain = model.test_step(batch(32, 48))[0]
    assert torch.equal(out.pred_sem_seg.data, plain.pred_sem_seg.data)
    torch.testing.assert_close(out.seg_logits.data, plain.seg_logits.data)


# --- flip / TTA on a flip-equivariant model ---------------------------------
class PointwiseNet(nn.Module):
    """1x1 convs and 2x2 average pooling: exactly flip-equivariant."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(),
                                  nn.AvgPool2d(2), nn.Conv2d(16, 32, 1),
                                  nn.ReLU(), nn.AvgPool2d(2))

    def forward(self, x):
        return [self.stem(x)]


def symmetric_model():
    MODELS.register_module('PointwiseNetForTest', module=PointwiseNet,
                           force=True)
    return build(
        dict(type='EncoderDecoder',
             data_preprocessor=dict(type='SegDataPreProcessor',
                                    mean=[123.675, 116.28, 103.53],
                                    std=[58.395, 57.12, 57.375],
                                    bgr_to_rgb=True),
             backbone=dict(type='PointwiseNetForTest'),
             decode_head=dict(type='FCNHead', in_channels=32, channels=16,
                              num_convs=1, kernel_size=1, concat_input=False,
                              num_classes=4, dropout_ratio=0.0,
                              norm_cfg=dict(type='BN')),
             test_cfg=dict(mode='whole')))


def test_flipped_image_gives_flipped_scores():
    model = symmetric_model()
    with torch.no_grad(), OODScoring(model, SCORERS):
        a = model.test_step(batch(32, 48))[0]
        b = model.test_step(batch(32, 48, flip=True))[0]
    for name in SCORERS:
        torch.testing.assert_close(b.ood_scores[name],
                                   a.ood_scores[name].flip(-1),
                                   rtol=1e-4, atol=1e-5)


def test_flip_metainfo_is_undone_for_scores():
    """A flipped input with flip=True in its metainfo is mapped back."""
    model = symmetric_model()
    data = batch(32, 48, flip=True)
    data['data_samples'][0].set_metainfo(
        dict(flip=True, flip_direction='horizontal'))
    with torch.no_grad(), OODScoring(model, ['energy', 'n_energy']):
        plain = model.test_step(batch(32, 48))[0]
        undone = model.test_step(data)[0]
    for name in ('energy', 'n_energy'):
        torch.testing.assert_close(undone.ood_scores[name],
                                   plain.ood_scores[name], rtol=1e-4,
                                   atol=1e-5)


def test_tta_merges_scores_over_scales_and_flips():
    from mmseg_ood.models import OODSegTTAModel
    model = symmetric_model()
    tta = OODSegTTAModel(module=model)
    h, w = 32, 48
    views = []
    for scale in (1.0, 1.5):
        for flip in (False, True):
            hh, ww = int(h * scale), int(w * scale)
            d = batch(hh, ww, flip=flip)
            s = d['data_samples'][0]
            s.set_metainfo(dict(ori_shape=(h, w), flip=flip,
                                flip_direction='horizontal'))
            views.append(d)
    data = dict(inputs=[v['inputs'] for v in views],
                data_samples=[v['data_samples'] for v in views])
    with torch.no_grad(), OODScoring(tta, SCORERS):
        merged = tta.test_step(data)[0]
        singles = [model.test_step(v)[0] for v in views]
    for name in SCORERS:
        m = merged.ood_scores[name]
        assert m.shape == (h, w)
        expected = torch.stack([s.ood_scores[name] for s in singles]).mean(0)
        torch.testing.assert_close(m, expected)
    # a symmetric model: the flipped views agree with the plain ones
    torch.testing.assert_close(singles[1].ood_scores['energy'],
                               singles[0].ood_scores['energy'], rtol=1e-4,
                               atol=1e-5)


def _options(strings):
    import argparse

    from mmengine.config import DictAction
    p = argparse.ArgumentParser()
    p.add_argument('--o', nargs='+', action=DictAction)
    return p.parse_args(['--o', *strings]).o


def test_runner_hook_attaches_scores_in_test_and_tta(tmp_path, synthetic_root,
                                                     trained_work_dir,
                                                     monkeypatch):
    """OODScoringHook in a Runner test loop, plain and with --tta."""
    import os

    from mmengine.evaluator import BaseMetric
    from mmengine.runner import Runner

    from conftest import QUICK_OPTIONS, STREET_CONFIG
    from mmseg.registry import METRICS
    from mmseg_ood.engine.runner import enable_tta
    from mmseg_ood.utils import load_config, safe_checkpoint_loading

    seen = []

    class RecordScores(BaseMetric):
        def process(self, data_batch, data_samples):
            for s in data_samples:
                seen.append({k: tuple(v.shape)
                             for k, v in s['ood_scores'].items()})
                seen[-1]['ori'] = tuple(s['ori_shape'])

        def compute_metrics(self, results):
            return {}

    METRICS.register_module('RecordScoresForTest', module=RecordScores,
                            force=True)
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    ckpt = open(os.path.join(trained_work_dir, 'last_checkpoint')).read()
    options = _options(QUICK_OPTIONS)
    for tta in (False, True):
        seen.clear()
        cfg = load_config(STREET_CONFIG, options,
                          str(tmp_path / f'w{int(tta)}'))
        cfg.load_from = ckpt.strip()
        cfg.custom_hooks = [dict(type='OODScoringHook',
                                 scorers=['msp', 'n_energy'])]
        cfg.test_evaluator = dict(type='RecordScoresForTest')
        if tta:
            enable_tta(cfg)
        runner = Runner.from_cfg(cfg)
        with safe_checkpoint_loading():
            runner.test()
        assert len(seen) == 2
        for rec in seen:
            assert rec['msp'] == rec['n_energy'] == rec['ori'] == (128, 256)


def test_score_image_on_a_trained_checkpoint(synthetic_root, trained_work_dir,
                                             monkeypatch):
    import os

    import cv2

    from conftest import STREET_CONFIG
    from mmseg.apis import init_model
    from mmseg_ood.apis import score_image
    from mmseg_ood.utils import safe_checkpoint_loading

    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    ckpt = open(os.path.join(trained_work_dir, 'last_checkpoint')).read()
    with safe_checkpoint_loading():
        model = init_model(STREET_CONFIG, ckpt.strip(), device='cpu')
    img = os.path.join(synthetic_root, 'street', 'ood', 'images',
                       '0000.png')
    h, w = cv2.imread(img).shape[:2]
    maps, result = score_image(model, img, ['msp', 'entropy', 'n_energy'],
                               return_result=True)
    assert set(maps) == {'msp', 'entropy', 'n_energy'}
    for m in maps.values():
        assert isinstance(m, np.ndarray) and m.dtype == np.float32
        assert m.shape == (h, w)
    assert result.pred_sem_seg.data.shape == (1, h, w)
    assert 0 <= maps['entropy'].min() and maps['entropy'].max() <= 1
    with pytest.raises(TypeError, match='one image'):
        score_image(model, [img, img], ['msp'])


def test_odin_steps_the_input_along_the_gradient_sign():
    """ODIN (Liang et al. 2018, eq. 2): the map is 1 - the
    temperature-scaled max softmax of the model at
    x - eps * (255 / std) * sign(grad_x L), L = -sum_p log S_yhat(p)(x; T),
    computed here by hand through the
    segmentor's own inference; the other scorers keep the plain pass."""
    model = zoo_model('fcn')
    data = model.data_preprocessor(batch(64, 96), False)
    x, samples = data['inputs'], data['data_samples']
    metas = [s.metainfo for s in samples]
    t, eps = 2.0, 0.01
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        logits = model.inference(xg, metas)
        loss = -torch.log_softmax(logits / t, 1).max(1).values.sum()
        grad, = torch.autograd.grad(loss, xg)
    std = model.data_preprocessor.std.reshape(1, -1, 1, 1)
    x_tilde = x - eps * 255.0 / std * grad.sign()
    def head_map(inputs, temperature):
        """The max softmax at the head's resolution, resized as mmseg_ood
        resizes every score map."""
        logits = model.decode_head(model.extract_feat(inputs))
        m = 1 - torch.softmax(logits / temperature, 1).max(1, True).values
        return F.interpolate(m, size=(64, 96), mode='bilinear',
                             align_corners=model.align_corners)[0, 0]

    with torch.no_grad():
        expected = head_map(x_tilde, t)
        plain_t, plain_1 = head_map(x, t), head_map(x, 1.0)
    odin = f'odin:temperature={t},epsilon={eps}'
    with torch.no_grad(), OODScoring(model, ['msp', odin]):
        out = model.test_step(batch(64, 96))[0]
    torch.testing.assert_close(out.ood_scores[odin], expected, rtol=1e-4,
                               atol=1e-6)
    torch.testing.assert_close(out.ood_scores['msp'], plain_1, rtol=1e-4,
                               atol=1e-6)
    # the step moved the input: the map is not the unperturbed one
    assert not torch.allclose(out.ood_scores[odin], plain_t)
    # eps = 0 is the max softmax at temperature T of the plain pass
    with torch.no_grad(), OODScoring(model, [f'odin:temperature={t},'
                                             'epsilon=0']) as s:
        zero = model.test_step(batch(64, 96))[0].ood_scores[s.names[0]]
    torch.testing.assert_close(zero, plain_t, rtol=1e-4, atol=1e-6)


def test_odin_is_refused_where_only_inference_runs():
    model = zoo_model('fcn')
    with OODScoring(model, ['odin']) as scoring:
        with pytest.raises(UnsupportedScorerError, match='perturbed input'):
            with scoring.scores_appended():
                pass
