"""MonitoredLoss (per-term logit gradient norms and loss diagnostics through
mmengine's MessageHub), UOILoss's diagnostics and coarse soft labels, and
the clipping of every shipped UOI config."""
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MessageHub

from conftest import QUICK_OPTIONS, REPO, run_tool

CONFIGS = osp.join(REPO, 'configs')
OBJECTS_UOI_CE = osp.join(
    CONFIGS, 'synthetic',
    'deeplabv3plus_r18-d8-uoi-ce_1xb8-300it_synthetic-objects-128x128.py')


def _build(cfg):
    import mmseg_ood  # noqa: F401  (registers the losses)
    from mmseg.registry import MODELS
    return MODELS.build(cfg)


def _hub(name):
    return MessageHub.get_instance(name)


def test_monitored_loss_is_the_wrapped_loss():
    torch.manual_seed(0)
    pred = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 5))
    target[0, 0, 0] = 255
    for cfg in (dict(type='UOILoss', loss_weight=0.7),
                dict(type='CrossEntropyLoss', loss_weight=0.3)):
        plain, wrapped = _build(cfg), _build(
            dict(type='MonitoredLoss', loss=cfg))
        assert wrapped.loss_name == plain.loss_name
        a = plain(pred, target, ignore_index=255)
        b = wrapped.eval()(pred, target, ignore_index=255)
        assert torch.equal(a, b)
        ga, = torch.autograd.grad(a, pred)
        gb, = torch.autograd.grad(b, pred)
        assert torch.equal(ga, gb)


def test_logged_gradient_norm_is_the_closed_form_of_cross_entropy():
    """mmseg's CE averaged over N pixels: dL/ds = w (softmax - onehot) / N
    at every pixel; the logged norm is that array's 2-norm (mmseg divides
    in float32: rel. 1e-6)."""
    torch.manual_seed(1)
    pred = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 4, (2, 3, 3))
    loss = _build(dict(type='MonitoredLoss',
                       loss=dict(type='CrossEntropyLoss', loss_weight=0.3)))
    hub = _hub('test_ce_closed_form')
    loss.train()
    out = loss.loss(pred, target)
    values = loss.scalars(out, pred, target)
    loss._log(values, hub)
    p = pred.detach().softmax(1).numpy()
    onehot = np.moveaxis(np.eye(4)[target.numpy()], -1, 1)
    expected = np.linalg.norm(0.3 * (p - onehot) / target.numel())
    assert values['logit_grad_norm'] == pytest.approx(expected, rel=1e-6)
    assert hub.get_scalar('train/loss_ce.logit_grad_norm').current() == \
        pytest.approx(expected, rel=1e-6)


def test_logged_only_while_training():
    pred = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (1, 4, 4))
    loss = _build(dict(type='MonitoredLoss',
                       loss=dict(type='UOILoss', loss_name='loss_uoi_t1')))
    hub = MessageHub.get_current_instance()
    key = 'train/loss_uoi_t1.logit_grad_norm'
    loss.eval()(pred, target)
    with torch.no_grad():
        loss.train()(pred, target)
    assert key not in hub.log_scalars
    loss.train()(pred, target).backward()
    assert key in hub.log_scalars
    assert 'train/loss_uoi_t1.max_term' in hub.log_scalars
    assert pred.grad is not None  # the graph survived the extra backward


def test_monitored_loss_bad_arguments_are_named():
    with pytest.raises(TypeError, match='`loss` must be a loss config'):
        _build(dict(type='MonitoredLoss', loss='UOILoss'))
    with pytest.raises(TypeError, match='unknown argument'):
        _build(dict(type='MonitoredLoss', loss=dict(type='UOILoss'),
                    log_gradients=True))


def test_uoi_diagnostics_find_the_missed_fragment():
    """A confident model that misses a 2-pixel fragment of class 2 at the
    crop's edge: that class has E[I] ~ 0 and the largest term."""
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[0, 4:12, 4:12] = 1
    target[0, 0, 7:9] = 2  # a fragment on the top edge
    logits = torch.full((1, 3, 16, 16), -10.0)
    logits[:, 0] = 10.0
    logits[0, 1, 4:12, 4:12] = 20.0  # class 1 right, class 2 missed
    loss = _build(dict(type='UOILoss'))
    d = loss.diagnostics(logits, target, border=2)
    inter, union, _ = __import__(
        'mmseg_ood.models.losses', fromlist=['x']).expected_intersection_union(
            logits, target)
    assert d['max_term_class'] == 2 and d['max_term_pixels'] == 2
    assert d['max_term_inter'] == pytest.approx(float(inter[2]))
    assert d['max_term'] == pytest.approx(
        float(union[2] / inter[2].clamp_min(1e-6)))
    assert d['max_term'] > 1e4
    assert d['max_term_border'] == 1.0 and d['classes_present'] == 3
    target[0, 0, 7:9] = 0
    target[0, 7:9, 7:9] = 2  # the same fragment in the middle
    assert loss.diagnostics(logits, target, border=2)['max_term_border'] == 0


def test_coarse_soft_labels_hand_worked():
    """label_patch=2 on a 2x2 image: one patch, soft label (3/4, 1/4),
    prediction the mean softmax; E[I] and E[U] by hand."""
    from mmseg_ood.models.losses import expected_intersection_union
    target = torch.tensor([[[0, 0], [0, 1]]])
    logits = torch.tensor([[[[0.0, 1.0], [2.0, 0.0]],
                            [[0.0, 0.0], [0.0, 3.0]]]], dtype=torch.float64)
    p = logits.softmax(1)[0].mean((1, 2)).numpy()  # mean softmax
    q = np.array([0.75, 0.25])
    inter, union, mass = expected_intersection_union(logits, target,
                                                     label_patch=2)
    np.testing.assert_allclose(inter.numpy(), 4 * p * q, rtol=1e-12)
    np.testing.assert_allclose(union.numpy(), 4 * (p + q - p * q),
                               rtol=1e-12)
    np.testing.assert_allclose(mass.numpy(), [3, 1])


def test_coarse_soft_labels_equal_per_pixel_on_constant_patches():
    """With labels and logits constant on each 2x2 patch, pooling changes
    nothing; void pixels only change the patch weight."""
    from mmseg_ood.models.losses import expected_intersection_union
    torch.manual_seed(2)
    small_t = torch.randint(0, 3, (2, 3, 4))
    small_l = torch.randn(2, 3, 3, 4, dtype=torch.float64)
    target = small_t.repeat_interleave(2, 1).repeat_interleave(2, 2)
    logits = small_l.repeat_interleave(2, 2).repeat_interleave(2, 3)
    a = expected_intersection_union(logits, target)
    b = expected_intersection_union(logits, target, label_patch=2)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    target[0, 0, 0] = 255  # one void pixel of a patch: weight 3 of 4
    a = expected_intersection_union(logits, target)
    b = expected_intersection_union(logits, target, label_patch=2)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)


def test_label_patch_errors_are_named():
    with pytest.raises(ValueError, match='`label_patch` must be an int'):
        _build(dict(type='UOILoss', label_patch=0))
    loss = _build(dict(type='UOILoss', label_patch=4))
    with pytest.raises(ValueError, match='multiples of it'):
        loss(torch.randn(1, 3, 6, 8), torch.zeros(1, 6, 8, dtype=torch.long))


def test_every_shipped_uoi_config_clips_gradients():
    """Every UOI config a user would train with clips the gradient norm;
    the diagnosis controls say CONTROL and never clip."""
    seen = 0
    for path in sorted(glob.glob(osp.join(CONFIGS, '**', '*.py'),
                                 recursive=True)):
        if 'UOILoss' not in open(path).read() and '-uoi' not in path:
            continue
        cfg = Config.fromfile(path)
        if 'UOILoss' not in json.dumps(cfg.model.decode_head.loss_decode,
                                       default=str):
            continue
        seen += 1
        clip = cfg.optim_wrapper.get('clip_grad')
        assert clip is not None, path
        if 'noclip' in path:
            assert 'CONTROL' in open(path).read() and clip.max_norm >= 1e30
        else:
            assert 0 < clip.max_norm < 1e3, path
    assert seen >= 6


@pytest.mark.slow  # trains: opt-in (--run-slow), the suite stays < 20 min
def test_diagnostics_reach_scalars_json_and_the_curves(tmp_path,
                                                       synthetic_root):
    """Two iterations of the shipped UOI + CE config: each iteration's
    terms, gradient norms and mmengine's total norm are in scalars.json,
    and the curves tool plots them and lists the largest terms."""
    work = str(tmp_path / 'uoi')
    run_tool('train.py', OBJECTS_UOI_CE, '--work-dir', work, '--cfg-options',
             *QUICK_OPTIONS, 'log_processor.window_size=1',
             env={'MMSEG_OOD_DATA': synthetic_root})
    from mmseg_ood.reports.training_log import read_scalars
    rows = read_scalars(work)['train']
    assert [r['step'] for r in rows] == [1, 2]
    for r in rows:
        for k in ('loss_uoi.logit_grad_norm', 'loss_ce.logit_grad_norm',
                  'grad_norm', 'loss_uoi.max_term',
                  'loss_uoi.max_term_class', 'loss_uoi.max_term_border'):
            assert np.isfinite(r[k]), k
        assert r['loss_uoi.max_term'] >= 1.0
        assert 0 <= r['loss_uoi.max_term_class'] < 6
    out = tmp_path / 'curves'
    run_tool('training_curves.py', work, '--names', 'uoi', '--out', str(out))
    md = (out / 'training_curves.md').read_text()
    assert '**uoi**: largest `loss_uoi.max_term`' in md
    assert 'loss_ce.logit_grad_norm' in md


def test_soft_label_pooling_matches_avg_pool_of_one_hot():
    """Independent check of the pooled labels: F.avg_pool2d of the one-hot
    map divided by the valid share."""
    from mmseg_ood.models.losses import expected_intersection_union
    torch.manual_seed(3)
    target = torch.randint(0, 4, (1, 8, 8))
    logits = torch.zeros(1, 4, 8, 8, dtype=torch.float64)  # p = 1/4
    _, _, mass = expected_intersection_union(logits, target, label_patch=4)
    onehot = F.one_hot(target, 4).permute(0, 3, 1, 2).double()
    q = F.avg_pool2d(onehot, 4)  # no void: the class distribution
    inter, union, _ = expected_intersection_union(logits, target,
                                                  label_patch=4)
    torch.testing.assert_close(inter, (16 * 0.25 * q).sum((0, 2, 3)))
    torch.testing.assert_close(union,
                               (16 * (0.25 + q - 0.25 * q)).sum((0, 2, 3)))
    torch.testing.assert_close(mass, onehot.sum((0, 2, 3)))


def _objects(variant):
    return osp.join(CONFIGS, 'synthetic',
                    f'deeplabv3plus_r18-d8-{variant}_1xb8-300it_'
                    'synthetic-objects-128x128.py')


def test_uoi_controls_change_only_what_they_name():
    """The variants of the UOI diagnosis each differ from their reference
    in one named place."""
    ref = Config.fromfile(OBJECTS_UOI_CE)
    noclip = Config.fromfile(_objects('uoi-ce-noclip'))
    assert noclip.model == ref.model
    assert noclip.optim_wrapper.clip_grad.max_norm == 1e30
    noclip.optim_wrapper.clip_grad = ref.optim_wrapper.clip_grad
    assert noclip.optim_wrapper == ref.optim_wrapper
    assert noclip.param_scheduler == ref.param_scheduler

    base = Config.fromfile(_objects('uoi-ce-noclip'))
    patch = Config.fromfile(_objects('uoi-ce-patch4-noclip'))
    assert patch.model.decode_head.loss_decode[0].loss == dict(
        base.model.decode_head.loss_decode[0].loss, label_patch=4)
    patch.model.decode_head.loss_decode[0].loss.pop('label_patch')
    assert patch.model == base.model
    assert patch.optim_wrapper == base.optim_wrapper

    ftlr = Config.fromfile(_objects('uoi-ce-ftlr-noclip'))
    assert ftlr.model == base.model
    assert ftlr.optim_wrapper.optimizer.lr == 2e-4
    assert ftlr.optim_wrapper.clip_grad == base.optim_wrapper.clip_grad
    assert ftlr.param_scheduler == [dict(type='PolyLR', eta_min=1e-5,
                                         power=0.9, begin=0, end=300,
                                         by_epoch=False)]

    uoi = Config.fromfile(_objects('uoi'))
    assert uoi.model.decode_head.loss_decode == [dict(
        type='MonitoredLoss', loss=dict(type='UOILoss', loss_weight=1.0))]
    assert uoi.optim_wrapper == ref.optim_wrapper


def test_fine_tuning_schedule_configs_change_only_the_schedule():
    """uoi-ce-ftlr and its cross-entropy control ftlr: AdamW at 2e-4, one
    poly decay from iteration 0, everything else as their references."""
    schedule = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0,
                     end=300, by_epoch=False)]
    base = osp.join(CONFIGS, 'synthetic', 'deeplabv3plus_r18-d8_1xb8-300it_'
                    'synthetic-objects-128x128.py')
    for variant, ref_path in (('uoi-ce-ftlr', OBJECTS_UOI_CE),
                              ('ftlr', base)):
        cfg = Config.fromfile(_objects(variant) if variant != 'ftlr' else
                              base.replace('-d8_', '-d8-ftlr_'))
        ref = Config.fromfile(ref_path)
        assert cfg.param_scheduler == schedule
        assert cfg.optim_wrapper.optimizer.lr == 2e-4
        cfg.optim_wrapper.optimizer.lr = ref.optim_wrapper.optimizer.lr
        assert cfg.optim_wrapper == ref.optim_wrapper
        assert cfg.model == ref.model
        assert cfg.train_cfg == ref.train_cfg


def test_min_class_pixels_leaves_out_small_classes():
    """The deviation, off by default: a class with at most m labelled
    pixels leaves the mean exactly like an absent class."""
    from mmseg_ood.models.losses import expected_intersection_union
    torch.manual_seed(4)
    logits = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[0, 2:5, 2:5] = 1
    target[0, 0, :2] = 2  # a 2-pixel fragment
    inter, union, _ = expected_intersection_union(logits, target)
    terms = (union / inter).numpy()
    full = _build(dict(type='UOILoss'))(logits, target)
    assert float(full) == pytest.approx(terms.mean())
    cut = _build(dict(type='UOILoss', min_class_pixels=2))
    assert float(cut(logits, target)) == pytest.approx(terms[:2].mean())
    assert cut.diagnostics(logits, target)['classes_present'] == 2
    # "at most m": 2 pixels stay in with m = 1.5
    assert float(_build(dict(type='UOILoss', min_class_pixels=1.5))(
        logits, target)) == pytest.approx(terms.mean())
    with pytest.raises(ValueError, match='`min_class_pixels` must be >= 0'):
        _build(dict(type='UOILoss', min_class_pixels=-1))


def test_min_pixels_control_changes_only_the_loss():
    ref = Config.fromfile(OBJECTS_UOI_CE)
    cfg = Config.fromfile(_objects('uoi-ce-minpix64'))
    uoi = cfg.model.decode_head.loss_decode[0].loss
    assert uoi.pop('min_class_pixels') == 64
    assert cfg.model == ref.model
    assert cfg.optim_wrapper == ref.optim_wrapper
    assert 'CONTROL' in open(_objects('uoi-ce-minpix64')).read()
