"""Importing mmseg_ood registers into mmseg's registries, nothing else; and
every registered type builds from a config dict through its registry and
does its job once on tiny data.

The registered names are found at runtime: a type registered without a
case in :data:`CASES` fails :func:`test_registered_type`, and a case whose
type is no longer registered fails :func:`test_every_case_is_registered`.
Each case checks a real property of the result (a closed form, a
hand-worked example or an independent computation), not only that it ran.
"""
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import mmseg_ood  # noqa: F401
from mmseg.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS
from mmseg_ood.scorers import OOD_SCORERS, ScoreInputs, build_scorer

from conftest import REPO, registered_classes

# ---------------------------------------------------------------------------
# what is registered
REGISTERED = set(registered_classes())

#: ``'<REGISTRY>.<name>'`` -> a function of the pytest ``request`` that
#: builds the type through its registry and checks what it does.
CASES = {}


def case(*keys):
    def register(fn):
        for key in keys:
            assert key not in CASES, key
            CASES[key] = fn
        return fn
    return register


@pytest.fixture(autouse=True)
def mmseg_scope():
    # pipelines name mmseg's transforms without a scope, as configs do
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def test_the_registries_hold_every_kind_of_type():
    kinds = {key.split('.')[0] for key in REGISTERED}
    assert kinds == {'DATASETS', 'HOOKS', 'METRICS', 'MODELS', 'TRANSFORMS',
                     'OOD_SCORERS'}
    assert len(REGISTERED) >= 50


def test_every_case_is_registered():
    stale = sorted(set(CASES) - REGISTERED)
    assert not stale, f'cases of types no longer registered: {stale}'


@pytest.mark.parametrize('key', sorted(REGISTERED))
def test_registered_type(key, request):
    if key not in CASES:
        pytest.fail(f'{key} is registered but has no case in CASES of '
                    f'{osp.basename(__file__)}: add one that builds it '
                    'from a config and checks what it does')
    CASES[key](request)


# ---------------------------------------------------------------------------
# shared tiny data


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    """Both synthetic variants, 2 images per split, 32 x 64 pixels."""
    from mmseg_ood.synthetic import make_synthetic_benchmark
    out = str(tmp_path_factory.mktemp('tiny_synthetic'))
    make_synthetic_benchmark(out, seed=0, num_train=2, num_val=2, num_ood=2,
                             num_image_ood=1, num_proxy=2, size=(32, 64))
    return out


@pytest.fixture(scope='module')
def street_model_cfg():
    """The synthetic street config's model (DeepLabV3+ R18, 6 classes),
    padding its inputs to 32 x 64 only."""
    from mmengine.config import Config

    from conftest import STREET_CONFIG, to_bn
    cfg = Config.fromfile(STREET_CONFIG).model
    to_bn(cfg)
    cfg.data_preprocessor['size'] = (32, 64)
    return cfg


@pytest.fixture(scope='module')
def street_model(street_model_cfg):
    torch.manual_seed(0)
    model = MODELS.build(street_model_cfg)
    return model.eval()


def _image_batch(seed=0, h=32, w=64):
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
    meta = dict(img_shape=(h, w), ori_shape=(h, w), img_path=f'{seed}.png')
    return dict(inputs=[img], data_samples=[SegDataSample(metainfo=meta)])


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else \
        np.asarray(t)


def _logsumexp(x, axis):
    m = x.max(axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis, keepdims=True))).squeeze(axis)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _write_image(path, arr):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, arr), path


# ---------------------------------------------------------------------------
# scorers: each against its formula, computed here with numpy

N, C, H, W, D = 2, 4, 3, 5, 6


def _winner_logits(rng, n=N, c=C):
    """Random logits in which every class is the argmax of some pixels."""
    winner = np.arange(H * W).reshape(H, W) % c
    onehot = (np.arange(c)[:, None, None] == winner).astype(np.float64)
    return (rng.normal(size=(n, c, H, W)) + 4 * onehot).astype(np.float32)


def _linear_inputs(rng):
    z = rng.normal(size=(N, D, H, W)).astype(np.float32)
    w = rng.normal(size=(C, D)).astype(np.float32)
    b = (0.1 * rng.normal(size=C)).astype(np.float32)
    logits = (np.einsum('cd,ndhw->nchw', w, z) + b[:, None, None]).astype(
        np.float32)
    inputs = ScoreInputs(logits=torch.from_numpy(logits),
                         embeddings=torch.from_numpy(z),
                         cls_weight=torch.from_numpy(w),
                         cls_bias=torch.from_numpy(b))
    return inputs, z.astype(np.float64), w.astype(np.float64)


def _scorer_inputs(name, rng):
    """``(ScoreInputs, expected map, scorer arguments)``."""
    if name in ('norm', 'n_max_logit', 'n_energy'):
        inputs, z, w = _linear_inputs(rng)
        norm = np.linalg.norm(z, axis=1)
        s = np.einsum('cd,ndhw->nchw', w, z)   # W z, the bias left out
        if name == 'norm':
            return inputs, -norm, {}
        if name == 'n_max_logit':   # eta = 1, delta = 0: -max_c s_c / ||z||
            return inputs, -(s / norm[:, None]).max(1), {}
        # eta = 2, delta = 0.5, T = 1: s'_c = ||w_c|| s_c / ||z||^0.5
        wn = np.linalg.norm(w, axis=1)[None, :, None, None]
        s = wn * s / norm[:, None]**0.5
        return inputs, -_logsumexp(s, 1), dict(eta=2.0, delta=0.5)
    if name == 'background':
        # IBE: v_BG = -log S, S = sum_FG e^v (eq. 5); p_BG = 1 / (1 + S^2)
        fg = rng.normal(size=(N, C - 1, H, W))
        s = np.exp(fg).sum(1)
        full = np.concatenate([-np.log(s)[:, None], fg], 1)
        inputs = ScoreInputs(logits=torch.from_numpy(full).float(),
                             head_kind='ibe', background_index=0)
        return inputs, 1 / (1 + s**2), {}
    if name in ('rba', 'no_object', 'eam', 'mask2anomaly', 'maskomaly'):
        q = 3
        cls = rng.normal(size=(N, q, C + 1)) * (3 if name == 'maskomaly'
                                                else 1)
        masks = rng.uniform(0.05, 1.0, size=(N, q, H, W))
        p = _softmax(cls, -1)
        f = np.einsum('nqk,nqhw->nkhw', p[..., :C], masks)
        inputs = ScoreInputs(
            logits=torch.from_numpy(f).float(), head_kind='mask',
            query_logits=torch.from_numpy(cls).float(),
            mask_probs=torch.from_numpy(masks).float())
        if name == 'rba':
            return inputs, -np.tanh(f).sum(1), {}
        if name == 'maskomaly':
            # anomaly masks of queries 1, 2; rejection by confident known
            # classes; borders where two known-class masks exceed 0.1
            conf, known = p.max(-1), p.argmax(-1) < C
            w = masks * conf[..., None, None]
            a = w[:, [1, 2]].max(1)
            r = np.where((known & (conf > 0.7))[..., None, None], 1 - w,
                         1.0).min(1)
            r[((masks > 0.1) & known[..., None, None]).sum(1) >= 2] = 0.0
            return inputs, 0.6 * r + 0.4 * a, dict(queries=[1, 2])
        if name == 'eam':  # 1 - sum_q m_q max_{k <= K} p_q(k)
            conf = p[..., :C].max(-1)
            return inputs, 1 - np.einsum('nq,nqhw->nhw', conf, masks), {}
        if name == 'mask2anomaly':
            # 1 - max_k f_k, zero where a kept stuff query (top class 0,
            # probability > 0.3) has probability * mask >= 0.2
            top, label = p.max(-1), p.argmax(-1)
            kept = (label == 0) & (top > 0.3)
            mass = ((top * kept)[..., None, None] * masks).max(1)
            return inputs, np.where(mass >= 0.2, 0.0, 1 - f.max(1)), dict(
                stuff_classes=[0], query_threshold=0.3, mask_threshold=0.2)
        void = np.einsum('nq,nqhw->nhw', p[..., C], masks)
        return inputs, void / masks.sum(1), {}
    if name == 'uno':  # K known classes, a negative one, "no object"
        q = 3
        cls = rng.normal(size=(N, q, C + 2))
        masks = rng.uniform(0.05, 1.0, size=(N, q, H, W))
        p = _softmax(cls, -1)
        g = np.einsum('nqj,nqhw->njhw', p[..., :C + 1], masks)
        post = g / g.sum(1, keepdims=True)
        inputs = ScoreInputs(
            logits=torch.from_numpy(g[:, :C]).float(), head_kind='mask',
            query_logits=torch.from_numpy(cls).float(),
            mask_probs=torch.from_numpy(masks).float())
        return inputs, 1 - post[:, :C].max(1) + post[:, C], {}
    logits32 = _winner_logits(rng)
    inputs = ScoreInputs(logits=torch.from_numpy(logits32))
    x = logits32.astype(np.float64)
    p = _softmax(x, 1)
    if name == 'msp':
        return inputs, 1 - p.max(1), {}
    if name == 'entropy':
        return inputs, -(p * np.log(p)).sum(1) / np.log(C), {}
    if name == 'max_logit':
        return inputs, -x.max(1), {}
    if name == 'energy':
        return inputs, -2.0 * _logsumexp(x / 2.0, 1), dict(temperature=2.0)
    if name == 'gen':
        top = -np.sort(-p, axis=1)[:, :2]
        return inputs, (top**0.5 * (1 - top)**0.5).sum(1), dict(
            gamma=0.5, top_m=2)
    if name == 'sml':
        # fitted on these logits: (max - class mean) / class std of the
        # max logits of the pixels predicted as that class, negated
        m, label = x.max(1), x.argmax(1)
        mean = np.array([m[label == c].mean() for c in range(C)])
        std = np.array([m[label == c].std() for c in range(C)])
        return inputs, -(m - mean[label]) / std[label], dict(num_classes=C)
    raise KeyError(name)


@case(*(f'OOD_SCORERS.{n}' for n in (
    'msp', 'entropy', 'max_logit', 'energy', 'gen', 'sml', 'norm',
    'n_max_logit', 'n_energy', 'background', 'rba', 'no_object', 'eam',
    'mask2anomaly', 'uno', 'maskomaly')))
def scorer_case(request):
    name = request.node.callspec.params['key'].split('.', 1)[1]
    rng = np.random.default_rng(sum(map(ord, name)))
    inputs, expected, args = _scorer_inputs(name, rng)
    scorer = build_scorer(dict(type=name, **args))
    assert type(scorer) is OOD_SCORERS.get(name)
    if name == 'sml':
        scorer.fit([inputs.logits])
    out = scorer(inputs)
    assert tuple(out.shape) == (N, H, W) and out.dtype == torch.float32
    np.testing.assert_allclose(_np(out), expected, rtol=1e-5, atol=1e-5)


@case(*(f'OOD_SCORERS.{n}' for n in (
    'react', 'ash', 'dice', 'vim', 'mahalanobis', 'rmd', 'knn', 'odin')))
def feature_scorer_case(request):
    """Fitted on the embeddings they then score (every pixel in the
    statistics), each against its formula in numpy / sklearn."""
    from sklearn.covariance import EmpiricalCovariance
    from sklearn.neighbors import NearestNeighbors

    from mmseg_ood.scorers import FeatureStatistics
    name = request.node.callspec.params['key'].split('.', 1)[1]
    rng = np.random.default_rng(sum(map(ord, name)))
    inputs, z, w = _linear_inputs(rng)
    b = _np(inputs.cls_bias).astype(np.float64)
    if name == 'ash':   # ASH-S assumes rectified activations
        z = np.maximum(z, 0)
        zt = torch.from_numpy(z.astype(np.float32))
        inputs = ScoreInputs(
            logits=torch.einsum('cd,ndhw->nchw', inputs.cls_weight, zt) +
            inputs.cls_bias[:, None, None], embeddings=zt,
            cls_weight=inputs.cls_weight, cls_bias=inputs.cls_bias)
    args = dict(react=dict(percentile=80), ash=dict(percentile=50),
                dice=dict(sparsity=50),
                vim=dict(principal_dim=3, bank_size=100),
                knn=dict(k=3, bank_size=100),
                odin=dict(temperature=10.0)).get(name, {})
    scorer = build_scorer(dict(type=name, **args))
    assert type(scorer) is OOD_SCORERS.get(name)
    if scorer.requires_fit:
        stats = FeatureStatistics(dict(scorer.statistics_spec()))
        scorer.set_statistics(stats.partial_fit(inputs))
    out = scorer(inputs)
    assert tuple(out.shape) == (N, H, W) and out.dtype == torch.float32
    flat = z.transpose(0, 2, 3, 1).reshape(-1, D)   # pixels (P, D)

    def energy(e):
        return -_logsumexp(e @ w.T + b, 1)

    if name == 'react':
        t = scorer.threshold
        assert abs(t - np.percentile(flat, 80)) <= 2.0**-11 * abs(t)
        expected = energy(np.minimum(flat, t))
    elif name == 'ash':   # ASH-S, 3 of 6 values kept per pixel
        top = np.argsort(-flat, 1)[:, :3]
        kept = np.zeros_like(flat)
        np.put_along_axis(kept, top, np.take_along_axis(flat, top, 1), 1)
        expected = energy(kept * np.exp(flat.sum(1) / kept.sum(1))[:, None])
    elif name == 'dice':
        v = w * flat.mean(0)[None]
        expected = -_logsumexp(flat @ np.where(v > np.percentile(v, 50), w,
                                               0).T + b, 1)
    elif name == 'vim':
        u = -np.linalg.pinv(w) @ b
        values, vectors = np.linalg.eigh((flat - u).T @ (flat - u) /
                                         len(flat))
        residual = vectors[:, np.argsort(-values)[3:]]
        norm = np.linalg.norm((flat - u) @ residual, axis=1)
        alpha = (flat @ w.T + b).max(1).mean() / norm.mean()
        expected = alpha * norm + energy(flat)
    elif name in ('mahalanobis', 'rmd'):
        label = (flat @ w.T + b).argmax(1)
        seen = np.unique(label)
        mu = {c: flat[label == c].mean(0) for c in seen}
        cov = EmpiricalCovariance().fit(
            flat - np.stack([mu[c] for c in label]))
        expected = np.min([cov.mahalanobis(flat - mu[c]) for c in seen], 0)
        if name == 'rmd':
            expected -= EmpiricalCovariance().fit(flat).mahalanobis(flat)
    elif name == 'knn':
        unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
        expected = NearestNeighbors(n_neighbors=3).fit(unit).kneighbors(
            unit)[0][:, -1]
    else:   # odin scores the (here unperturbed) logits at its temperature
        expected = 1 - _softmax(_np(inputs.logits).astype(np.float64) / 10,
                                1).max(1)
        np.testing.assert_allclose(_np(out), expected, rtol=1e-5, atol=1e-6)
        return
    expected = expected.reshape(N, H, W)
    np.testing.assert_allclose(_np(out), expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------
# models


def _head_cfg(kind):
    return dict(type=kind, background_index=0,
                head=dict(type='FCNHead', in_channels=8, channels=4,
                          num_convs=1, concat_input=False, num_classes=5,
                          norm_cfg=None))


@case('MODELS.IBEHead', 'MODELS.SCrIBEHead')
def head_case(request):
    kind = request.node.callspec.params['key'].split('.', 1)[1]
    torch.manual_seed(0)
    head = MODELS.build(_head_cfg(kind))
    x = torch.randn(2, 8, 6, 7)
    out = head([x])
    # k = 5 classes: the wrapped head's 4 foreground logits and v_BG
    assert tuple(out.shape) == (2, 5, 6, 7)
    assert head.head.num_classes == 4
    fg = out[:, 1:].detach().double()
    np.testing.assert_allclose(_np(out[:, 0]), _np(-torch.logsumexp(fg, 1)),
                               rtol=1e-5, atol=1e-6)   # IBE eq. 5
    assert head.head.loss_decode.use_sigmoid == (kind == 'SCrIBEHead')


def _loss_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=g)
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[0, 0, :2] = 255                                 # void
    target[1, 3, 3:] = 254                                 # proxy outlier
    return pred.requires_grad_(), target


def _expected_overlap(pred, target):
    """Per present class: E[I], E[U] (eq. 24, 28) by hand."""
    p = _softmax(_np(pred), 1)
    t = _np(target)
    inter, union = [], []
    for k in range(p.shape[1]):
        valid = t != 255
        y = ((t == k) & valid).astype(float)
        if not y.sum():
            continue
        pk = p[:, k] * valid
        inter.append((pk * y).sum())
        union.append((pk + y - pk * y).sum())
    return np.array(inter), np.array(union)


def _entropy_max(pred, target, lam=0.9):
    log_p = np.log(_softmax(_np(pred), 1))
    t = _np(target)
    total, count = 0.0, 0
    for n, i, j in np.ndindex(t.shape):
        if t[n, i, j] == 254:
            total += lam * -log_p[n, :, i, j].mean()
        elif t[n, i, j] != 255:
            total += (1 - lam) * -log_p[n, t[n, i, j], i, j]
        else:
            continue
        count += 1
    return total / count


def _check_loss(value, pred, expected):
    assert value.dim() == 0 and torch.isfinite(value)
    assert float(value) == pytest.approx(expected, rel=1e-9)
    value.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert float(pred.grad.abs().sum()) > 0


@case('MODELS.UOILoss', 'MODELS.IoULoss')
def overlap_loss_case(request):
    kind = request.node.callspec.params['key'].split('.', 1)[1]
    loss = MODELS.build(dict(type=kind, loss_weight=2.0))
    pred, target = _loss_inputs()
    target = torch.where(target == 254, 255, target)
    inter, union = _expected_overlap(pred, target)
    expected = (union / inter).mean() if kind == 'UOILoss' else \
        1 - (inter / union).mean()
    _check_loss(loss(pred, target), pred, 2.0 * expected)
    assert loss.loss_name == ('loss_uoi' if kind == 'UOILoss' else
                              'loss_iou')


def _check_mask_outlier_loss(kind, seed, reference, loss_name):
    """``kind`` with weight 2 on random outputs and labels against
    ``reference(f, ind, ood)``, the loss in numpy from the class scores
    ``f`` (N, K, H, W) and the ID / outlier masks; and a gradient."""
    loss = MODELS.build(dict(type=kind, loss_weight=2.0))
    rng = np.random.default_rng(seed)
    cls = torch.from_numpy(rng.normal(size=(N, 4, C + 1)))
    mask = torch.from_numpy(rng.normal(size=(N, 4, H, W)) * 3)
    mask.requires_grad_(True)
    target = torch.from_numpy(rng.integers(0, C, size=(N, H, W)))
    target[0, :2] = 254
    target[1, :, :1] = 255
    p = _softmax(cls.numpy(), -1)[..., :C]
    f = np.einsum('nqk,nqhw->nkhw', p, 1 / (1 + np.exp(-mask.detach()
                                                     .numpy())))
    t = target.numpy()
    value = loss(cls, mask, target)
    assert value.item() == pytest.approx(
        2.0 * reference(f, t < C, t == 254), rel=1e-9)
    value.backward()
    assert torch.isfinite(mask.grad).all() and mask.grad.abs().sum() > 0
    assert loss.loss_name == loss_name


@case('MODELS.RbAOutlierLoss')
def rba_outlier_loss_case(request):
    def reference(f, ind, ood):
        # the RbA score and the squared hinge of RbA sec. 3.3
        score = -np.tanh(f).sum(1)
        return 0.5 * (np.mean(np.maximum(score[ind] + 1.0, 0)**2) +
                      np.mean(np.maximum(-0.1 - score[ood], 0)**2))

    _check_mask_outlier_loss('RbAOutlierLoss', 3, reference,
                             'loss_rba_outlier')


@case('MODELS.Mask2AnomalyMarginLoss')
def mask2anomaly_margin_loss_case(request):
    def reference(f, ind, ood):
        # -max_k f_k and Mask2Anomaly's margin loss (m = 1)
        score = -f.max(1)
        return 0.5 * (np.mean(score[ind]**2) +
                      np.mean(np.maximum(1.0 - score[ood], 0)**2))

    _check_mask_outlier_loss('Mask2AnomalyMarginLoss', 4, reference,
                             'loss_mask2anomaly_margin')


@case('MODELS.OutlierMask2FormerHead')
def outlier_mask2former_head_case(request):
    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    cfg = Config.fromfile(osp.join(
        REPO, 'configs', 'synthetic',
        'mask2former_r18-uno-ft_1xb8-100it_synthetic-street-128x256.py'))
    head_cfg = cfg.model.decode_head
    head_cfg.num_queries = 4
    head = MODELS.build(head_cfg)
    # UNO: K + 2 class outputs; outlier pixels become masks of class K
    assert head.cls_embed.out_features == 6 + 2 and head.out_channels == 6
    lab = torch.zeros(1, 8, 8, dtype=torch.long)
    lab[0, :4] = 254
    lab[0, 4:, :2] = 255
    sample = SegDataSample(metainfo=dict(img_shape=(8, 8), pad_shape=(8, 8)))
    sample.gt_sem_seg = PixelData(data=lab)
    routed, original = head._outlier_routed([sample])
    inst, _ = head._seg_data_to_instance_data(routed)
    assert sorted(inst[0].labels.tolist()) == [0, 6]
    assert torch.equal(original[0], lab[0])


@case('MODELS.EntropyMaximizationLoss')
def entropy_max_case(request):
    loss = MODELS.build(dict(type='EntropyMaximizationLoss', ood_weight=0.9))
    pred, target = _loss_inputs(1)
    _check_loss(loss(pred, target), pred, _entropy_max(pred, target))


@case('MODELS.MonitoredLoss')
def monitored_loss_case(request):
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('test_registration_monitored_loss')
    loss = MODELS.build(dict(type='MonitoredLoss',
                             loss=dict(type='EntropyMaximizationLoss')))
    loss.train()
    pred, target = _loss_inputs(2)
    value = loss(pred, target)
    _check_loss(value, pred, _entropy_max(pred, target))
    # it logged the norm of the gradient the loss sends to the logits
    logged = hub.get_scalar('train/loss_entropy_max.logit_grad_norm')
    assert logged.current() == pytest.approx(float(pred.grad.norm()),
                                             rel=1e-9)


@case('MODELS.OODSegmentor')
def ood_segmentor_case(request):
    cfg = request.getfixturevalue('street_model_cfg')
    torch.manual_seed(0)
    model = MODELS.build(dict(type='OODSegmentor', segmentor=cfg,
                              scorer='max_logit', threshold=0.0)).eval()
    assert model.ood_label == 6     # a new class after the 6 classes
    batch = _image_batch(1)
    with torch.no_grad():
        first = model.test_step(batch)[0]
        # a threshold in the middle of this image's scores
        model.threshold = float(first.ood_score.data.median())
        out = model.test_step(batch)[0]
    score = out.ood_score.data[0]
    mask = score >= model.threshold
    assert 0 < float(mask.float().mean()) < 1
    assert torch.equal(out.ood_mask.data[0], mask)
    plain = out.seg_logits.data.argmax(0)
    assert torch.equal(out.pred_sem_seg.data[0],
                       torch.where(mask, torch.tensor(6), plain))


@case('MODELS.OODSegTTAModel')
def tta_case(request):
    from mmengine.structures import PixelData

    from mmseg.structures import SegDataSample
    cfg = request.getfixturevalue('street_model_cfg')
    tta = MODELS.build(dict(type='OODSegTTAModel', module=cfg))
    g = torch.Generator().manual_seed(0)
    augmented = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_path='a.png'))
        s.seg_logits = PixelData(data=torch.randn(6, 4, 5, generator=g))
        s.set_field(dict(msp=torch.rand(4, 5, generator=g)), 'ood_scores')
        augmented.append(s)
    # copies: mmseg's merge writes into the last augmentation's sample
    logits = [_np(s.seg_logits.data).copy() for s in augmented]
    scores = [_np(s.ood_scores['msp']).copy() for s in augmented]
    (merged, ) = tta.merge_preds([augmented])
    np.testing.assert_allclose(_np(merged.seg_logits.data),
                               (logits[0] + logits[1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(_np(merged.ood_scores['msp']),
                               (scores[0] + scores[1]) / 2, rtol=1e-6)
    probs = _softmax(logits[0], 0) + _softmax(logits[1], 0)
    np.testing.assert_array_equal(_np(merged.pred_sem_seg.data[0]),
                                  probs.argmax(0))


# ---------------------------------------------------------------------------
# metrics: hand-worked samples


def _ood_sample():
    """2 OOD pixels scored 0.9 / 0.3, 3 ID pixels 0.1 / 0.5 / 0.2, 3 void
    pixels (scored to disturb, if they counted): AUROC 5/6 (5 of the 6
    OOD-ID pairs ordered), FPR at 95 % TPR 1/3 (the threshold 0.3 flags the
    ID 0.5). ``perfect``: the OOD pixels 1, every other 0: AUROC 1."""
    label = torch.tensor([[[1, 1, 0, 0], [0, 255, 255, 255]]],
                         dtype=torch.uint8)
    mixed = torch.tensor([[0.9, 0.3, 0.1, 0.5], [0.2, 0.95, 0.0, 0.4]])
    perfect = (label[0] == 1).float()
    return dict(ood_scores=dict(mixed=mixed, perfect=perfect),
                gt_sem_seg=dict(data=label), img_path='a.png')


@case('METRICS.OODMetric')
def ood_metric_case(request):
    metric = METRICS.build(dict(type='OODMetric', component_threshold=None))
    metric.process({}, [_ood_sample()])
    out = metric.evaluate(1)
    assert out['ood/perfect/auroc'] == 1.0
    assert out['ood/perfect/fpr95'] == 0.0
    assert out['ood/mixed/auroc'] == pytest.approx(5 / 6)
    assert out['ood/mixed/fpr95'] == pytest.approx(1 / 3)


@case('METRICS.OperatingPointMetric')
def operating_point_case(request):
    metric = METRICS.build(dict(type='OperatingPointMetric', scorer='mixed',
                                rule='tpr', target=0.5))
    metric.process({}, [_ood_sample()])
    out = metric.evaluate(1)
    # the largest threshold flagging >= half of the OOD pixels {0.9, 0.3}
    assert out['operating_point/threshold'] == float(np.float32(0.9))
    assert metric.last_result['id_pixels'] == 3
    assert metric.last_result['ood_pixels'] == 2


@case('METRICS.ECEMetric', 'METRICS.CalibrationMetric')
def ece_case(request):
    kind = request.node.callspec.params['key'].split('.', 1)[1]
    metric = METRICS.build(dict(type=kind))
    # four pixels, two classes: confidences 0.9 (right), 0.9 (wrong), 0.7
    # (right), 0.6 (right) in bins 13, 13, 10, 9 of 15:
    # ECE = (2 |0.5 - 0.9| + |1 - 0.7| + |1 - 0.6|) / 4 = 0.375
    p = np.array([[0.9, 0.9, 0.3, 0.6], [0.1, 0.1, 0.7, 0.4]])
    logits = torch.from_numpy(np.log(p)).float()[:, None]      # (2, 1, 4)
    label = torch.tensor([[[0, 1, 1, 0]]])
    metric.process({}, [dict(seg_logits=dict(data=logits),
                             gt_sem_seg=dict(data=label))])
    assert metric.evaluate(1)['calibration/ece'] == pytest.approx(
        0.375, abs=1e-6)


_PRED = torch.tensor([[[0, 1, 1], [1, 0, 0]]])
_GT = torch.tensor([[[0, 0, 1], [1, 1, 0]]])
# class 0: I = 2, U = 4; class 1: I = 2, U = 4: mIoU 50 %


@case('METRICS.OpenSetIoUMetric')
def open_set_case(request):
    metric = METRICS.build(dict(type='OpenSetIoUMetric', scorer='entropy',
                                thresholds=(None, 0.5)))
    metric.dataset_meta = dict(classes=('a', 'b'))
    score = torch.zeros(2, 3)
    score[0, 0] = 0.8     # flagged at t = 0.5: class 0 loses I there
    metric.process({}, [dict(pred_sem_seg=dict(data=_PRED),
                             gt_sem_seg=dict(data=_GT),
                             ood_scores=dict(entropy=score))])
    out = metric.evaluate(1)
    assert out['open_set/mIoU'] == 50.0
    assert out['open_set/mIoU@t=0.5'] == (25.0 + 50.0) / 2


@case('METRICS.PerClassIoUMetric')
def per_class_iou_case(request):
    metric = METRICS.build(dict(type='PerClassIoUMetric'))
    metric.dataset_meta = dict(classes=('a', 'b'))
    pred = _PRED.clone()
    pred[0, 0, 1] = 0      # class a: I = 3, U = 4; class b: I = 2, U = 3
    metric.process({}, [dict(pred_sem_seg=dict(data=pred),
                             gt_sem_seg=dict(data=_GT))])
    out = metric.evaluate(1)
    assert out['IoU.a'] == 75.0 and out['IoU.b'] == round(200 / 3, 2)
    assert out['mIoU'] == round((75.0 + 200 / 3) / 2, 2)


@case('METRICS.BackgroundIoUMetric')
def background_iou_case(request):
    metric = METRICS.build(dict(type='BackgroundIoUMetric',
                                background_index=0))
    # no labels: every pixel is background; 3 of 6 predicted background
    metric.process({}, [dict(pred_sem_seg=dict(data=_PRED))])
    # labelled: one void pixel left out, 3 of the 5 valid predicted 0
    gt = torch.zeros(1, 2, 3, dtype=torch.long)
    gt[0, 1, 2] = 255
    metric.process({}, [dict(pred_sem_seg=dict(data=1 - _PRED),
                             gt_sem_seg=dict(data=gt))])
    out = metric.evaluate(2)
    assert out['background_iou/pooled'] == pytest.approx(100 * 6 / 11)
    assert out['background_iou/image_mean'] == pytest.approx(
        100 * (3 / 6 + 3 / 5) / 2)
    assert out['background_iou/pixels'] == 11


@case('METRICS.OODSegmentMetric')
def segment_metric_case(request):
    metric = METRICS.build(dict(type='OODSegmentMetric', scorer='entropy',
                                thresholds=[0.5]))
    label = np.zeros((6, 8), np.uint8)
    label[0:2, 0:2] = 1          # object A: its segment is a TP
    label[4:6, 6:8] = 1          # object B: missed, a FN
    score = np.zeros((6, 8), np.float32)
    score[0:2, 0:2] = 0.9
    score[4:6, 0:2] = 0.8        # an ID blob: a FP segment of 4 ID pixels
    g = torch.Generator().manual_seed(0)
    metric.process({}, [dict(
        seg_logits=dict(data=torch.randn(3, 6, 8, generator=g)),
        gt_sem_seg=dict(data=torch.from_numpy(label)[None]),
        ood_scores=dict(entropy=torch.from_numpy(score)), img_path='a.png')])
    out = metric.evaluate(1)
    key = 'segments/entropy@0.5/'
    assert (out[key + 'tp'], out[key + 'fp'], out[key + 'fn'],
            out[key + 'objects']) == (1, 1, 1, 2)
    assert out[key + 'id_miss_rate'] == pytest.approx(4 / 40)


@case('METRICS.RepresentationMetric')
def representation_case(request):
    metric = METRICS.build(dict(type='RepresentationMetric'))
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 7))
    metric.process({}, [dict(seg_logits=dict(data=torch.from_numpy(logits)))])
    out = metric.evaluate(1)
    # the covariance's eigenvalues, largest first, accumulated
    v = logits.reshape(3, -1)
    eig = np.linalg.eigvalsh(np.cov(v, bias=True))[::-1]
    expected = np.cumsum(eig) / eig.sum()
    assert out['representation/pixels'] == 35
    np.testing.assert_allclose(out['representation/explained_variance'],
                               expected, rtol=1e-9)
    assert out['representation/dims_90'] == int(
        np.argmax(expected >= 0.9) + 1)


# ---------------------------------------------------------------------------
# transforms


@case('TRANSFORMS.ImageCorruption')
def image_corruption_case(request):
    from imagecorruptions import corrupt
    t = TRANSFORMS.build(dict(type='ImageCorruption',
                              corruption='gaussian_noise', severity=2,
                              seed=3))
    img = np.random.default_rng(0).integers(0, 256, (40, 48, 3), np.uint8)
    state = np.random.get_state()
    out = t(dict(img=img.copy(), img_path='a/b/../c.png'))
    assert out['corruption'] == 'gaussian_noise@2'
    # by hand: numpy's generator seeded from the first 4 bytes (little
    # endian) of sha256('<normalized path>|<corruption>|<severity>|<seed>'),
    # the toolkit on the RGB image
    key = 'a/c.png|gaussian_noise|2|3'.encode()
    seed = int.from_bytes(hashlib.sha256(key).digest()[:4], 'little')
    np.random.seed(seed)
    expected = corrupt(np.ascontiguousarray(img[..., ::-1]), severity=2,
                       corruption_name='gaussian_noise')[..., ::-1]
    np.random.set_state(state)
    np.testing.assert_array_equal(out['img'], expected)
    assert not np.array_equal(out['img'], img)


@case('TRANSFORMS.LoadImageFromFileChecked')
def load_image_case(request):
    tmp = request.getfixturevalue('tmp_path')
    img = np.random.default_rng(1).integers(0, 256, (5, 7, 3), np.uint8)
    _write_image(str(tmp / 'ok.png'), img)
    t = TRANSFORMS.build(dict(type='LoadImageFromFileChecked'))
    out = t(dict(img_path=str(tmp / 'ok.png')))
    np.testing.assert_array_equal(out['img'], img)
    assert out['ori_shape'] == (5, 7)
    (tmp / 'bad.png').write_bytes(b'not an image')
    with pytest.raises(ValueError,
                       match="cannot decode the image '.*bad.png'"):
        t(dict(img_path=str(tmp / 'bad.png')))


@case('TRANSFORMS.LoadOODAnnotations')
def load_ood_annotations_case(request):
    tmp = request.getfixturevalue('tmp_path')
    raw = np.array([[0, 1, 7], [255, 7, 1]], np.uint8)
    path = str(tmp / 'label.png')
    _write_image(path, raw)
    lut = np.full(256, 255, np.uint8)           # 0 -> 0, 1 -> 1, else void
    lut[1] = 1
    lut[0] = 0
    listed = np.zeros(256, bool)
    listed[[0, 1, 255]] = True                  # 7 is not listed
    t = TRANSFORMS.build(dict(type='LoadOODAnnotations'))
    out = t(dict(seg_map_path=path, img_path='img.png', ood_lut=lut,
                 ood_listed=listed, reduce_zero_label=False, seg_fields=[]))
    np.testing.assert_array_equal(out['gt_seg_map'],
                                  [[0, 1, 255], [255, 255, 1]])
    assert out['ood_unlisted'] == {7: 2}


# ---------------------------------------------------------------------------
# datasets: tiny trees


def _packed_pipeline():
    return [dict(type='LoadImageFromFileChecked'),
            dict(type='LoadOODAnnotations'),
            dict(type='PackSegInputs',
                 meta_keys=('img_path', 'seg_map_path', 'ori_shape',
                            'img_shape', 'ood_unlisted'))]


RAW_LABEL = np.array([[0, 1, 2, 7], [150, 200, 201, 255]], np.uint8)


def _smiyc(v):
    return {0: 0, 1: 1, 255: 255}.get(v, 255)


def _laf(v):
    return 0 if v == 1 else 1 if 2 <= v <= 200 else 255


def _road_anomaly(v):
    return {0: 0, 2: 1}.get(v, 255)


# name -> ({image file: label file}, extra config, raw -> OOD label,
# raw values the value map does not list)
OOD_LAYOUTS = {
    'RoadAnomaly21Dataset': ({
        'images/validation0000.jpg':
        'labels_masks/validation0000_labels_semantic.png'}, {}, _smiyc,
        (2, 7, 150, 200, 201)),
    'RoadObstacle21Dataset': ({
        'images/validation_1.webp':
        'labels_masks/validation_1_labels_semantic.png'}, {}, _smiyc,
        (2, 7, 150, 200, 201)),
    'LostAndFoundDataset': ({
        'leftImg8bit/test/02_a/02_a_000000_000010_leftImg8bit.png':
        'gtCoarse/test/02_a/02_a_000000_000010_gtCoarse_labelIds.png'}, {},
        _laf, ()),
    'FishyscapesLAFDataset': ({
        'images/01_a_000000_000050_leftImg8bit.png':
        'labels/01_a_000000_000050_fishy-labels.png'}, {}, _smiyc,
        (2, 7, 150, 200, 201)),
    'FishyscapesStaticDataset': ({'0007_rgb.png': '0007_labels.png'}, {},
                                 _smiyc, (2, 7, 150, 200, 201)),
    'RoadAnomalyDataset': ({
        'frames/animals01.jpg':
        'frames/animals01.labels/labels_semantic.png'}, {}, _road_anomaly,
        (1, 7, 150, 200, 201, 255)),
    'OODFolderDataset': ({'img/x.jpg': 'mask/x.png'}, dict(
        data_prefix=dict(img_path='img', seg_map_path='mask'),
        img_suffix='.jpg', seg_map_suffix='.png',
        value_map={0: 0, 200: 1, (250, 255): 255}),
        lambda v: {0: 0, 200: 1}.get(v, 255), (1, 2, 7, 150, 201)),
}


@case(*(f'DATASETS.{n}' for n in OOD_LAYOUTS))
def ood_dataset_case(request):
    name = request.node.callspec.params['key'].split('.', 1)[1]
    files, extra, mapping, unlisted = OOD_LAYOUTS[name]
    root = request.getfixturevalue('tmp_path') / name
    img = np.full(RAW_LABEL.shape + (3, ), 90, np.uint8)
    for image, label in files.items():
        _write_image(str(root / image), img)
        _write_image(str(root / label), RAW_LABEL)
    ds = DATASETS.build(dict(type=name, data_root=str(root),
                             pipeline=_packed_pipeline(), **extra))
    assert len(ds) == 1
    sample = ds[0]['data_samples']
    expected = np.vectorize(mapping)(RAW_LABEL)
    np.testing.assert_array_equal(_np(sample.gt_sem_seg.data[0]), expected)
    assert sample.ood_unlisted == {v: int((RAW_LABEL == v).sum())
                                   for v in unlisted}
    assert tuple(ds[0]['inputs'].shape) == (3, ) + RAW_LABEL.shape


def _read_label(path):
    return np.asarray(Image.open(path))


@case('DATASETS.SyntheticOODDataset')
def synthetic_ood_case(request):
    root = osp.join(request.getfixturevalue('tiny_root'), 'street', 'ood')
    ds = DATASETS.build(dict(type='SyntheticOODDataset', data_root=root,
                             pipeline=_packed_pipeline()))
    assert len(ds) == 2
    sample = ds[1]['data_samples']
    raw = _read_label(osp.join(root, 'labels_masks',
                               '0001_labels_semantic.png'))
    assert set(np.unique(raw)) <= {0, 1, 255} and (raw == 1).any()
    np.testing.assert_array_equal(_np(sample.gt_sem_seg.data[0]), raw)


@case('DATASETS.SyntheticStreetDataset', 'DATASETS.SyntheticObjectsDataset')
def synthetic_id_case(request):
    kind = request.node.callspec.params['key'].split('.', 1)[1]
    variant = 'street' if kind == 'SyntheticStreetDataset' else 'objects'
    root = osp.join(request.getfixturevalue('tiny_root'), variant)
    ds = DATASETS.build(dict(
        type=kind, data_root=root,
        data_prefix=dict(img_path='images/val',
                         seg_map_path='annotations/val'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations'), dict(type='PackSegInputs')]))
    assert len(ds) == 2 and len(ds.metainfo['classes']) == 6
    assert (ds.metainfo['classes'][0] == 'background') == (
        variant == 'objects')
    out = ds[0]
    raw = _read_label(osp.join(root, 'annotations', 'val', '0000.png'))
    np.testing.assert_array_equal(_np(out['data_samples'].gt_sem_seg.data[0]),
                                  raw)
    image = cv2.imread(osp.join(root, 'images', 'val', '0000.png'))
    np.testing.assert_array_equal(_np(out['inputs']),
                                  image.transpose(2, 0, 1))


_LOAD_LABELS = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                dict(type='PackSegInputs')]


def _proxy_cfg(root):
    return dict(type='OutlierProxyDataset',
                data_root=osp.join(root, 'street', 'outlier_proxy'),
                pipeline=_LOAD_LABELS)


@case('DATASETS.OutlierProxyDataset')
def outlier_proxy_case(request):
    root = request.getfixturevalue('tiny_root')
    ds = DATASETS.build(_proxy_cfg(root))
    assert len(ds) == 2
    labels = _np(ds[0]['data_samples'].gt_sem_seg.data)
    assert set(np.unique(labels)) == {254, 255}


@case('DATASETS.OutlierMixDataset')
def outlier_mix_case(request):
    root = request.getfixturevalue('tiny_root')
    street = dict(type='SyntheticStreetDataset',
                  data_root=osp.join(root, 'street'),
                  data_prefix=dict(img_path='images/train',
                                   seg_map_path='annotations/train'),
                  pipeline=_LOAD_LABELS)
    ds = DATASETS.build(dict(type='OutlierMixDataset', dataset=street,
                             outlier=_proxy_cfg(root), ratio=0.5))
    # 2 ID samples + round(0.5 * 2) = 1 outlier slot
    assert len(ds) == 3
    assert [ds.is_outlier_slot(i) for i in range(3)] == [False, False, True]
    assert ds.metainfo['classes'] == ds.dataset.metainfo['classes']
    outlier = _np(ds[2]['data_samples'].gt_sem_seg.data)
    assert set(np.unique(outlier)) == {254, 255}
    first = _np(ds[0]['data_samples'].gt_sem_seg.data[0])
    np.testing.assert_array_equal(first, _read_label(
        osp.join(root, 'street', 'annotations', 'train', '0000.png')))


@case('DATASETS.WholeImageOODDataset')
def whole_image_case(request):
    root = osp.join(request.getfixturevalue('tiny_root'), 'street',
                    'image_ood')
    ds = DATASETS.build(dict(type='WholeImageOODDataset', data_root=root,
                             data_prefix=dict(img_path=''),
                             pipeline=_LOAD_LABELS))
    # every image of the sub-directories, sorted; the labels step dropped
    assert [osp.relpath(ds.get_data_info(i)['img_path'], root)
            for i in range(len(ds))] == ['gwn/0000.png', 'textures/0000.png']
    assert [type(t).__name__ for t in ds.pipeline.transforms] == [
        'LoadImageFromFileChecked', 'PackSegInputs']
    assert 'gt_sem_seg' not in ds[0]['data_samples']


# ---------------------------------------------------------------------------
# hooks on fake runners


@case('HOOKS.FiniteLogitsHook')
def finite_logits_case(request):
    from mmengine.structures import PixelData

    from mmseg.structures import SegDataSample
    hook = HOOKS.build(dict(type='FiniteLogitsHook'))
    sample = SegDataSample(metainfo=dict(img_path='x/nan.png'))
    sample.seg_logits = PixelData(data=torch.zeros(2, 3, 3))
    hook.after_test_iter(None, 0, outputs=[sample])      # finite: passes
    sample.seg_logits.data[1, 0, 0] = float('nan')
    hook.after_val_iter(None, 0, outputs=[sample])       # val=False: off
    with pytest.raises(ValueError, match=r'1 non-finite .* of 18 .*nan\.png'):
        hook.after_test_iter(None, 0, outputs=[sample])


@case('HOOKS.OODScoringHook')
def ood_scoring_hook_case(request):
    model = request.getfixturevalue('street_model')
    tmp = request.getfixturevalue('tmp_path')
    hook = HOOKS.build(dict(type='OODScoringHook', scorers=['msp']))
    metric = METRICS.build(dict(type='OODMetric'))
    runner = SimpleNamespace(model=model, work_dir=str(tmp))
    runner.test_loop = SimpleNamespace(
        evaluator=SimpleNamespace(metrics=[metric]), runner=runner)
    batch = _image_batch(2)
    with torch.no_grad():
        plain = model.test_step(batch)[0]
        hook.before_test(runner)
        scored = model.test_step(batch)[0]
        hook.after_test(runner)
        after = model.test_step(batch)[0]
    msp = scored.ood_scores['msp']
    assert tuple(msp.shape) == (32, 64) and msp.dtype == torch.float32
    # 1 - max softmax of 6 classes lies in [0, 5/6]
    assert float(msp.min()) >= 0 and float(msp.max()) <= 5 / 6 + 1e-6
    # the scores ride along: logits and prediction are the plain model's
    assert torch.equal(scored.seg_logits.data, plain.seg_logits.data)
    assert torch.equal(scored.pred_sem_seg.data, plain.pred_sem_seg.data)
    assert 'ood_scores' not in after and 'ood_scores' not in plain
    assert metric.spill_dir == str(tmp)


@case('HOOKS.MetaClassifierHook')
def meta_classifier_hook_case(request):
    from mmengine.structures import PixelData

    from mmseg.structures import SegDataSample
    from mmseg_ood.meta.classifier import (MetaClassifier,
                                           save_meta_classifiers)
    tmp = request.getfixturevalue('tmp_path')
    # keeps segments of at least 3 pixels (fitted on sizes 1, 2 vs 3, 4)
    clf = MetaClassifier(['S'], 'entropy', 0.5, C=1e4, num_classes=3).fit(
        np.array([[1.], [2.], [3.], [4.]]), np.array([0, 0, 1, 1]))
    path = str(tmp / 'meta.json')
    save_meta_classifiers(path, [clf])
    hook = HOOKS.build(dict(type='MetaClassifierHook', meta_classifier=path))
    score = torch.zeros(6, 8)
    score[0:2, 0:2] = 0.9        # 4 pixels: kept
    score[4, 6] = 0.8            # 1 pixel: rejected
    sample = SegDataSample()
    sample.seg_logits = PixelData(data=torch.randn(3, 6, 8))
    sample.set_field(dict(entropy=score), 'ood_scores')
    model = SimpleNamespace(test_step=lambda data: [sample])
    original = model.test_step
    runner = SimpleNamespace(model=model, hooks=[hook])
    hook.before_test(runner)
    (out, ) = model.test_step(None)
    hook.after_test(runner)
    filtered = out.ood_scores['entropy+meta@0.5']
    below = np.nextafter(np.float32(0.5), np.float32(-1))
    expected = _np(score).copy()
    expected[4, 6] = below
    np.testing.assert_array_equal(_np(filtered), expected)
    assert model.test_step is original       # the model is given back


@case('HOOKS.OODVisualizationHook')
def visualization_case(request):
    from mmengine.structures import PixelData

    from mmseg.structures import SegDataSample
    tmp = request.getfixturevalue('tmp_path')
    out_dir = tmp / 'vis'
    hook = HOOKS.build(dict(type='OODVisualizationHook', out_dir=str(out_dir),
                            num=1))
    samples = []
    for name in ('first', 'second'):
        path = str(tmp / f'{name}.png')
        _write_image(path, np.full((16, 24, 3), 100, np.uint8))
        s = SegDataSample(metainfo=dict(img_path=path))
        s.pred_sem_seg = PixelData(data=torch.zeros(1, 16, 24,
                                                    dtype=torch.long))
        s.set_field(dict(msp=torch.rand(16, 24)), 'ood_scores')
        samples.append(s)
    runner = SimpleNamespace(model=SimpleNamespace(
        dataset_meta=dict(palette=[[0, 0, 0], [255, 0, 0]])))
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, outputs=samples)
    # num=1: the first image's panels only
    assert sorted(os.listdir(out_dir)) == ['first.png']
    assert Image.open(out_dir / 'first.png').size[0] > 24


@case('HOOKS.ExtremeImagesHook')
def extreme_images_case(request):
    from mmengine.structures import PixelData

    from mmseg.structures import SegDataSample
    tmp = request.getfixturevalue('tmp_path')
    out_dir = tmp / 'extremes'
    hook = HOOKS.build(dict(type='ExtremeImagesHook', out_dir=str(out_dir),
                            num=1))
    samples = []
    for name, noise in (('clean', 0.0), ('noisy', 2.0)):
        path = str(tmp / f'{name}.png')
        _write_image(path, np.full((16, 24, 3), 100, np.uint8))
        s = SegDataSample(metainfo=dict(img_path=path))
        lab = torch.zeros(1, 16, 24, dtype=torch.uint8)
        lab[0, 4:8, 4:10] = 1
        s.gt_sem_seg = PixelData(data=lab)
        s.pred_sem_seg = PixelData(data=torch.zeros(1, 16, 24,
                                                    dtype=torch.long))
        g = torch.Generator().manual_seed(0)
        score = lab[0].float() + noise * torch.rand(16, 24, generator=g)
        s.set_field(dict(energy=score), 'ood_scores')
        samples.append(s)
    runner = SimpleNamespace(model=SimpleNamespace(
        dataset_meta=dict(palette=[[0, 0, 0], [255, 0, 0]])))
    hook.before_test(runner)
    hook.after_test_iter(runner, 0, outputs=samples)
    hook.after_test_epoch(runner)
    # the clean map separates perfectly (AP 100), the noisy one does not
    files = sorted(os.listdir(out_dir))
    assert files[0] == 'highest_1_AP100.00_clean.png'
    assert files[1].startswith('lowest_1_AP') and \
        files[1].endswith('_noisy.png')


@case('HOOKS.OODTrackingHook')
def tracking_case(request):
    from mmengine.structures import PixelData

    from mmseg.structures import SegDataSample
    tmp = request.getfixturevalue('tmp_path')
    hook = HOOKS.build(dict(type='OODTrackingHook', curves=False,
                            num_heatmaps=1))
    path = str(tmp / 'img.png')
    _write_image(path, np.full((16, 24, 3), 100, np.uint8))
    s = SegDataSample(metainfo=dict(img_path=path))
    s.pred_sem_seg = PixelData(data=torch.zeros(1, 16, 24, dtype=torch.long))
    s.set_field(dict(msp=torch.rand(16, 24), energy=torch.rand(16, 24)),
                'ood_scores')
    sent = []
    visualizer = SimpleNamespace(add_image=lambda name, image, step: sent.
                                 append((name, image.shape, step)))
    runner = SimpleNamespace(iter=7, visualizer=visualizer)
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0, outputs=[s, s])
    hook.after_val_epoch(runner)
    # one heatmap: the image and the two score panels side by side
    assert sent == [('val/ood_heatmaps/0.png', (16, 72, 3), 7)]


@case('HOOKS.ProgressBarHook')
def progress_case(request):
    hook = HOOKS.build(dict(type='ProgressBarHook', title='Scoring 3'))
    runner = SimpleNamespace(test_dataloader=SimpleNamespace(
        dataset=range(3)))
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, outputs=[1, 2])
    hook.after_test_iter(runner, 1, outputs=[3, 4])   # a padding repeat
    assert hook._bar.completed == 3                   # capped at the set
    assert hook._bar.task_num == 3
    hook.after_test_epoch(runner)
    assert hook._bar is None


@case('HOOKS.RankZeroLoggerHook')
def rank_zero_logger_case(request):
    from mmseg_ood.engine.hooks import rank_zero_logger_hook as module
    tmp = request.getfixturevalue('tmp_path')
    monkeypatch = request.getfixturevalue('monkeypatch')
    hook = HOOKS.build(dict(type='RankZeroLoggerHook', interval=1))
    runner = SimpleNamespace(
        work_dir=str(tmp), log_dir=str(tmp), timestamp='20240101_000000',
        logger=SimpleNamespace(info=lambda msg: None), test_dataloader=[0],
        log_processor=SimpleNamespace(get_log_after_epoch=lambda *a, **k: (
            {'mIoU': 50.0}, 'mIoU: 50.0')))
    hook.before_run(runner)
    path = tmp / '20240101_000000.json'
    monkeypatch.setattr(module, 'get_rank', lambda: 1)
    hook.after_test_epoch(runner, {'mIoU': 50.0})
    assert not path.exists()                 # another rank writes nothing
    monkeypatch.setattr(module, 'get_rank', lambda: 0)
    hook.after_test_epoch(runner, {'mIoU': 50.0})
    assert json.loads(path.read_text()) == {'mIoU': 50.0}


@case('HOOKS.SMIYCExportHook')
def smiyc_export_case(request):
    import h5py

    from mmseg.structures import SegDataSample
    tmp = request.getfixturevalue('tmp_path')
    hook = HOOKS.build(dict(type='SMIYCExportHook', out_dir=str(tmp),
                            dataset_name='LostAndFound-test',
                            method_prefix='m_', transform='none'))
    # float16 holds these exactly: the raw cast keeps them
    score = torch.tensor([[0.5, 0.25, 0.125], [1.0, 2.0, -4.0]])
    sample = SegDataSample(metainfo=dict(
        img_path='/data/0007_leftImg8bit.png'))
    sample.set_field(dict(msp=score), 'ood_scores')
    runner = SimpleNamespace(test_dataloader=SimpleNamespace(dataset=[0]))
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, outputs=[sample])
    hook.after_test_epoch(runner, {})
    with h5py.File(tmp / 'anomaly_p' / 'm_msp' / 'LostAndFound-test' /
                   '0007.hdf5', 'r') as f:
        value = f['value'][:]
    assert value.dtype == np.float16
    np.testing.assert_array_equal(value, _np(score).astype(np.float16))


# ---------------------------------------------------------------------------
# import side effects


def test_import_has_no_other_side_effect():
    # In a fresh interpreter: the checkpoint loader, torch's safe globals and
    # the default scope are untouched by the import.
    code = '\n'.join([
        'import torch',
        'from mmengine.runner.checkpoint import CheckpointLoader',
        'from mmengine.registry import DefaultScope',
        "before = CheckpointLoader._schemes['']",
        'safe = list(torch.serialization.get_safe_globals())',
        'import mmseg_ood',
        "assert CheckpointLoader._schemes[''] is before",
        'assert list(torch.serialization.get_safe_globals()) == safe',
        'assert DefaultScope.get_current_instance() is None',
        "print('ok')",
    ])
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'
