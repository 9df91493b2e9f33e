"""Outlier-supervised Mask2Former: RbA's squared-hinge outlier loss, UNO's
negative class, where pixels labelled 254 go, and the fine-tuning configs."""
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData

from conftest import QUICK_OPTIONS, REPO, run_tool
from mmseg_ood.errors import InvalidValueError
from mmseg_ood.utils.checkpoint import load_checkpoint_file
from mmseg_ood.models.losses import (Mask2AnomalyMarginLoss, RbAOutlierLoss,
                                     mask_class_scores, rba_score)
from mmseg_ood.models.mask_classification import mask_predict
from mmseg_ood.scorers import ScoreInputs, UnsupportedScorerError, build_scorer
from test_mask_classification import hand_case
from test_ood_scoring import build

SYNTHETIC = osp.join(REPO, 'configs', 'synthetic')
BASE = osp.join(SYNTHETIC,
                'mask2former_r18_1xb8-300it_synthetic-street-128x256.py')
RBA = osp.join(SYNTHETIC,
               'mask2former_r18-rba-ft_1xb8-100it_synthetic-street-128x256.py')
UNO = osp.join(SYNTHETIC,
               'mask2former_r18-uno-ft_1xb8-100it_synthetic-street-128x256.py')
M2A = osp.join(
    SYNTHETIC,
    'mask2former_r18-mask2anomaly-ft_1xb8-100it_synthetic-street-128x256.py')


def hinge_reference(score, target, tau_in=-1.0, tau_out=-0.1):
    """RbA's loss from its definition, in numpy."""
    score, target = np.asarray(score, np.float64), np.asarray(target)
    ood = target == 254
    ind = (target != 255) & ~ood
    loss = np.mean(np.maximum(score[ind] - tau_in, 0) ** 2) if ind.any() \
        else 0.0
    if ood.any():
        loss = 0.5 * (loss + np.mean(np.maximum(tau_out - score[ood], 0)**2))
    return loss


def test_rba_score_is_the_scorers_formula_on_a_hand_pixel():
    x = hand_case()
    mask_logits = torch.logit(x.mask_probs)
    s = rba_score(x.query_logits, mask_logits)
    assert s.item() == pytest.approx(
        -(math.tanh(0.4875) + math.tanh(0.2875)), abs=1e-6)
    assert torch.allclose(s, build_scorer('rba')(x))


def random_layer_outputs():
    """One decoder layer's outputs (2 images, 5 queries, 3 classes, 6x6)
    and labels with outliers (254) in the first image, void (255) in the
    second."""
    torch.manual_seed(0)
    cls = torch.randn(2, 5, 4) * 2
    mask = torch.randn(2, 5, 6, 6) * 3
    target = torch.randint(0, 3, (2, 6, 6))
    target[0, :2] = 254
    target[1, :, :1] = 255
    return cls, mask, target


def test_squared_hinge_equals_its_definition():
    cls, mask, target = random_layer_outputs()
    loss = RbAOutlierLoss()(cls, mask, target)
    # same size: the bilinear resize is the identity
    ref = hinge_reference(rba_score(cls, mask).numpy(), target.numpy())
    assert loss.item() == pytest.approx(ref, rel=1e-5)
    # no outlier pixel: L_in alone, not halved (the authors' code)
    target2 = target.clone()
    target2[target2 == 254] = 255
    ref2 = hinge_reference(rba_score(cls, mask).numpy(), target2.numpy())
    assert RbAOutlierLoss()(cls, mask, target2).item() == pytest.approx(
        ref2, rel=1e-5)
    # outliers only (a proxy image): L_out / 2; all void: 0
    only = torch.full_like(target, 255)
    only[0, 0, 0] = 254
    s = rba_score(cls, mask)[0, 0, 0].item()
    assert RbAOutlierLoss()(cls, mask, only).item() == pytest.approx(
        0.5 * max(-0.1 - s, 0)**2, rel=1e-5)
    assert RbAOutlierLoss()(cls, mask, torch.full_like(target, 255)) == 0


def test_labels_at_a_larger_size_see_the_resized_score():
    torch.manual_seed(1)
    cls, mask = torch.randn(1, 3, 3), torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 2, (1, 8, 8))
    target[0, 2:5, 2:5] = 254
    up = F.interpolate(rba_score(cls, mask)[:, None], size=(8, 8),
                       mode='bilinear', align_corners=True)[:, 0]
    assert RbAOutlierLoss()(cls, mask, target).item() == pytest.approx(
        hinge_reference(up.numpy(), target.numpy()), rel=1e-5)


def test_bad_loss_arguments_are_named():
    with pytest.raises(InvalidValueError, match='outlier_margin'):
        RbAOutlierLoss(inlier_margin=0.0, outlier_margin=-0.5)
    with pytest.raises(InvalidValueError, match='inlier_margin'):
        RbAOutlierLoss(inlier_margin=float('nan'))
    with pytest.raises(TypeError, match='margin_in'):
        RbAOutlierLoss(margin_in=-1)
    with pytest.raises(InvalidValueError, match='ood_index'):
        RbAOutlierLoss(ood_index=1)(torch.zeros(1, 2, 3),
                                    torch.zeros(1, 2, 2, 2),
                                    torch.zeros(1, 2, 2, dtype=torch.long))


def margin_reference(score, target, margin=1.0):
    """Mask2Anomaly's loss from its definition, in numpy: halved always."""
    score, target = np.asarray(score, np.float64), np.asarray(target)
    ood = target == 254
    ind = (target != 255) & ~ood
    loss = np.mean(score[ind]**2) if ind.any() else 0.0
    if ood.any():
        loss += np.mean(np.maximum(margin - score[ood], 0)**2)
    return 0.5 * loss


def test_mask2anomaly_score_is_minus_the_largest_class_score():
    x = hand_case()  # f = (0.4875, 0.2875) on its pixel
    s = Mask2AnomalyMarginLoss().score(x.query_logits,
                                       torch.logit(x.mask_probs))
    assert s.item() == pytest.approx(-0.4875, abs=1e-6)
    # the mask2anomaly scorer (no stuff, no flip) is 1 + s
    assert torch.allclose(1 + s, build_scorer('mask2anomaly')(x), atol=1e-6)


def test_mask2anomaly_margin_loss_equals_its_definition():
    cls, mask, target = random_layer_outputs()
    s = -mask_class_scores(cls, mask).amax(1).numpy()
    loss = Mask2AnomalyMarginLoss()
    assert loss(cls, mask, target).item() == pytest.approx(
        margin_reference(s, target.numpy()), rel=1e-5)
    # no outlier pixel: the ID term, halved all the same (their code)
    no_ood = target.clone()
    no_ood[no_ood == 254] = 255
    ind = no_ood.numpy() < 254
    assert loss(cls, mask, no_ood).item() == pytest.approx(
        0.5 * np.mean(s[ind]**2), rel=1e-5)
    # another margin, weight and name
    other = Mask2AnomalyMarginLoss(margin=0.5, loss_weight=3.0,
                                   loss_name='loss_m2a')
    assert other(cls, mask, target).item() == pytest.approx(
        3.0 * margin_reference(s, target.numpy(), 0.5), rel=1e-5)
    assert other.loss_name == 'loss_m2a'
    # all void: 0 with a gradient path
    mask.requires_grad_(True)
    zero = loss(cls, mask, torch.full_like(target, 255))
    assert zero.item() == 0 and zero.requires_grad


def rba_gradient(s, ind, ood):
    """dL/ds of RbA's loss: 2 relu(s - tau_in) / (2 n_id) on ID pixels,
    -2 relu(tau_out - s) / (2 n_ood) on outliers."""
    ds = torch.zeros_like(s)
    ds[ind] = 2 * F.relu(s[ind] + 1.0) / (2 * ind.sum())
    ds[ood] = -2 * F.relu(-0.1 - s[ood]) / (2 * ood.sum())
    return ds


def margin_gradient(s, ind, ood):
    """dL/ds of Mask2Anomaly's loss: s / n_id on ID pixels, -(m - s)_+ /
    n_ood on outliers; both raise s (f >= 0, so s <= 0)."""
    ds = torch.zeros_like(s)
    ds[ind] = s[ind] / ind.sum()
    ds[ood] = -F.relu(1.0 - s[ood]) / ood.sum()
    assert (ds[ind] <= 0).all() and (ds[ood] < 0).all()
    return ds


@pytest.mark.parametrize('loss_type,score,gradient', [
    (RbAOutlierLoss, rba_score, rba_gradient),
    (Mask2AnomalyMarginLoss,
     lambda c, m: -mask_class_scores(c, m).amax(1), margin_gradient),
], ids=['rba', 'mask2anomaly'])
def test_gradient_equals_the_closed_form(loss_type, score, gradient):
    # the closed form dL/ds against autograd through the score, and the
    # whole loss against finite differences
    torch.manual_seed(2)
    cls = torch.randn(1, 4, 3, dtype=torch.float64)
    mask = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[[0, 1, 254], [0, 254, 1], [255, 1, 0]]])
    loss = loss_type()(cls, mask, target)
    s = score(cls, mask)
    ds = gradient(s.detach(), target < 254, target == 254)
    expected, = torch.autograd.grad(s, mask, ds, retain_graph=True)
    got, = torch.autograd.grad(loss, mask)
    assert torch.allclose(got, expected, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda m: loss_type()(cls, m, target), (mask, ))


def test_bad_margin_loss_arguments_are_named():
    with pytest.raises(InvalidValueError, match='margin'):
        Mask2AnomalyMarginLoss(margin=float('inf'))
    with pytest.raises(InvalidValueError, match='loss_name'):
        Mask2AnomalyMarginLoss(loss_name='margin')
    with pytest.raises(TypeError, match="'margn'"):
        Mask2AnomalyMarginLoss(margn=1.0)


def head_model(path, **head):
    cfg = Config.fromfile(path)
    model = cfg.model
    model.decode_head.num_queries = 6
    model.decode_head.train_cfg.num_points = 256
    model.decode_head.update(head)
    model.pop('data_preprocessor')
    return build(model.to_dict())


@pytest.fixture(scope='module')
def rba_model():
    return head_model(RBA)


@pytest.fixture(scope='module')
def uno_model():
    return head_model(UNO)


def samples(labels):
    out = []
    for lab in labels:
        s = SegDataSample(metainfo=dict(
            img_shape=lab.shape, pad_shape=lab.shape, ori_shape=lab.shape,
            seg_map_path='frame.png'))
        s.gt_sem_seg = PixelData(data=lab[None])
        out.append(s)
    return out


def street_labels():
    lab = torch.zeros(2, 64, 64, dtype=torch.long)
    lab[:, 32:] = 1
    lab[0, 10:20, 10:20] = 254
    lab[1, :4] = 255
    return lab


def test_outlier_pixels_reach_rba_as_a_mask_and_are_void_for_the_rest(
        rba_model):
    head = rba_model.decode_head
    labels = street_labels()
    routed, original = head._outlier_routed(samples(labels))
    assert torch.equal(original, labels)
    inst, _ = head._seg_data_to_instance_data(routed)
    # no mask of class 254; the outlier pixels are in no ground-truth mask
    assert sorted(inst[0].labels.tolist()) == [0, 1]
    assert not inst[0].masks[:, 10:20, 10:20].any()
    # the loss on every layer is RbAOutlierLoss of that layer's outputs
    x = rba_model.extract_feat(torch.randn(2, 3, 64, 64))
    torch.manual_seed(0)
    losses = head.loss(x, samples(labels), rba_model.train_cfg)
    layers = head.transformer_decoder.num_layers + 1
    names = ['loss_rba_outlier'] + [f'd{i}.loss_rba_outlier'
                                    for i in range(layers - 1)]
    assert all(n in losses for n in names)
    cls, masks = head(x, samples(labels))
    direct = RbAOutlierLoss()(cls[-1], masks[-1], labels)
    assert losses['loss_rba_outlier'].item() == pytest.approx(direct.item(),
                                                              rel=1e-5)
    # with the outliers relabelled void, the outlier term changes
    void = labels.clone()
    void[void == 254] = 255
    assert RbAOutlierLoss()(cls[-1], masks[-1], void).item() != \
        pytest.approx(direct.item())


def test_rba_config_trains_only_the_class_and_mask_mlps(rba_model):
    trainable = {n.split('.')[1] if n.startswith('decode_head') else
                 n.split('.')[0]
                 for n, p in rba_model.named_parameters() if p.requires_grad}
    assert trainable == {'cls_embed', 'mask_embed'}
    rba_model.train()
    assert not rba_model.backbone.bn1.training  # norm_eval


def test_negative_class_gets_the_outlier_pixels(uno_model):
    head = uno_model.decode_head
    assert head.cls_embed.out_features == 6 + 2
    routed, _ = head._outlier_routed(samples(street_labels()))
    inst, _ = head._seg_data_to_instance_data(routed)
    labels = inst[0].labels.tolist()
    assert sorted(labels) == [0, 1, 6]
    neg = inst[0].masks[labels.index(6)]
    assert neg[10:20, 10:20].all() and neg.sum() == 100
    # image 2 has no outlier: no negative mask
    assert 6 not in inst[1].labels.tolist()
    # an unknown label is named with its file
    bad = street_labels()
    bad[0, 0, 0] = 9
    with pytest.raises(InvalidValueError, match=r'labels \[9\] of frame.png'):
        head._outlier_routed(samples(bad))


def test_negative_class_is_dropped_from_the_prediction_not_the_queries(
        uno_model):
    uno_model.eval()
    inputs = torch.randn(1, 3, 64, 128)
    metas = [dict(img_shape=(64, 128), pad_shape=(64, 128),
                  ori_shape=(64, 128))]
    with torch.no_grad():
        x = uno_model.extract_feat(inputs)
        seg = uno_model.decode_head.predict(x, metas, uno_model.test_cfg)
        seg2, q, m = mask_predict(uno_model.decode_head, x, metas)
    assert seg.shape[1] == 6 and q.shape[-1] == 8
    assert torch.equal(seg, seg2)  # the same operations: bit-identical
    inputs = ScoreInputs(seg2, head_kind='mask', query_logits=q,
                         mask_probs=m)
    assert inputs.num_negative_classes == 1
    assert build_scorer('uno')(inputs).shape == (1, 64, 128)


def test_k_plus_1_classifier_loads_into_k_plus_2(uno_model):
    head = uno_model.decode_head
    k = 6
    old = {'cls_embed.weight': torch.randn(k + 1, head.cls_embed.in_features),
           'cls_embed.bias': torch.randn(k + 1)}
    fresh = head.cls_embed.weight[k].detach().clone()
    state = dict(uno_model.state_dict())
    for name, value in old.items():
        state[f'decode_head.{name}'] = value
    uno_model.load_state_dict(state)
    w = head.cls_embed.weight.detach()
    assert torch.equal(w[:k], old['cls_embed.weight'][:k])
    assert torch.equal(w[-1], old['cls_embed.weight'][-1])
    assert torch.equal(w[k], fresh)  # the negative row keeps its init
    assert torch.equal(head.cls_embed.bias.detach()[-1],
                       old['cls_embed.bias'][-1])


def test_uno_on_a_hand_computed_pixel():
    # K = 1 known class, one negative, "no object"; two queries
    # softmax([ln 2, ln 1, ln 1]) = [1/2, 1/4, 1/4];
    # softmax([0, ln 3, 0]) = [1/5, 3/5, 1/5]
    q = torch.tensor([[[math.log(2), 0., 0.], [0., math.log(3), 0.]]])
    m = torch.tensor([[0.8, 0.5]]).view(1, 2, 1, 1)
    # g_known = 1/2 * 0.8 + 1/5 * 0.5 = 0.5; g_neg = 1/4 * 0.8 + 3/5 * 0.5
    # = 0.5; P = (1/2, 1/2): UNO = 1 - 1/2 + 1/2 = 1
    f = torch.tensor([0.5]).view(1, 1, 1, 1)
    x = ScoreInputs(f, head_kind='mask', query_logits=q, mask_probs=m)
    assert build_scorer('uno')(x).item() == pytest.approx(1.0, abs=1e-6)
    # the K known classes' max: K = 2, a confident known query
    q2 = torch.tensor([[[math.log(6), 0., 0., 0.]]])  # [2/3, 1/9, 1/9, 1/9]
    m2 = torch.ones(1, 1, 1, 1)
    f2 = torch.tensor([2 / 3, 1 / 9]).view(1, 2, 1, 1)
    x2 = ScoreInputs(f2, head_kind='mask', query_logits=q2, mask_probs=m2)
    # P over (known 1, known 2, neg) = (2/3, 1/9, 1/9) / (8/9)
    expected = 1 - (2 / 3) / (8 / 9) + (1 / 9) / (8 / 9)
    assert build_scorer('uno')(x2).item() == pytest.approx(expected, 1e-6)


def test_uno_needs_a_negative_class():
    with pytest.raises(UnsupportedScorerError, match='negative_class=True'):
        build_scorer('uno')(hand_case())


def test_head_arguments_are_checked():
    with pytest.raises(InvalidValueError, match='ood_index'):
        head_model(RBA, ood_index=3)
    with pytest.raises(InvalidValueError, match='trainable'):
        head_model(RBA, trainable=('mask_mlp', ))


def test_finetune_configs_differ_from_the_baseline_only_as_named():
    base, rba, uno, m2a = (Config.fromfile(p)
                           for p in (BASE, RBA, UNO, M2A))
    assert rba.load_from and uno.load_from and m2a.load_from
    for cfg in (rba, uno, m2a):
        ds = cfg.train_dataloader.dataset
        assert ds.type == 'OutlierMixDataset'
        assert ds.dataset == base.train_dataloader.dataset
        assert ds.outlier.type == 'OutlierProxyDataset'
        assert cfg.train_cfg.max_iters == 100
        head = dict(cfg.model.decode_head)
        for key in ('type', 'outlier_loss', 'trainable', 'negative_class',
                    'loss_cls'):
            head.pop(key, None)
        ref = dict(base.model.decode_head)
        for key in ('type', 'loss_cls'):
            ref.pop(key)
        assert head == ref
    assert rba.model.backbone.frozen_stages == 4
    # Mask2Anomaly: the backbone frozen, the rest trained; its mix ratio
    assert m2a.model.backbone.frozen_stages == 4
    assert m2a.model.backbone.norm_eval
    assert m2a.model.decode_head.trainable is None
    assert m2a.model.decode_head.outlier_loss.type == \
        'Mask2AnomalyMarginLoss'
    assert m2a.train_dataloader.dataset.ratio == 0.2
    # UNO trains everything: the backbone as the baseline's (norm_eval
    # False is ResNet's default)
    assert dict(uno.model.backbone, norm_eval=False) == dict(
        base.model.backbone, norm_eval=False)
    assert uno.model.backbone.frozen_stages == -1
    assert len(uno.model.decode_head.loss_cls.class_weight) == 8


@pytest.fixture(scope='module')
def mask2former_checkpoint(tmp_path_factory, synthetic_root):
    work = tmp_path_factory.mktemp('m2f')
    run_tool('train.py', BASE, '--work-dir', str(work), '--cfg-options',
             *QUICK_OPTIONS, env={'MMSEG_OOD_DATA': synthetic_root})
    return (work / 'last_checkpoint').read_text().strip()


@pytest.mark.parametrize('config,scorers', [(RBA, ['rba']),
                                            (UNO, ['uno', 'no_object']),
                                            (M2A, ['mask2anomaly'])])
def test_finetune_runs_from_the_trained_checkpoint_and_scores(
        config, scorers, mask2former_checkpoint, synthetic_root, tmp_path):
    env = {'MMSEG_OOD_DATA': synthetic_root}
    work = tmp_path / 'ft'
    proc = run_tool('train.py', config, '--work-dir', str(work),
                    '--cfg-options', f'load_from={mask2former_checkpoint}',
                    *QUICK_OPTIONS, env=env)
    log = proc.stdout + proc.stderr
    if config == RBA:
        assert 'd0.loss_rba_outlier' in log
    if config == M2A:
        assert 'd0.loss_mask2anomaly_margin' in log
    ckpt = (work / 'last_checkpoint').read_text().strip()
    state = load_checkpoint_file(ckpt)['state_dict']
    start = load_checkpoint_file(mask2former_checkpoint)['state_dict']
    frozen = 'decode_head.pixel_decoder.input_convs.0.conv.weight'
    assert torch.equal(state[frozen], start[frozen]) == (config == RBA)
    deep = 'backbone.layer4.0.conv1.weight'  # frozen: RbA, Mask2Anomaly
    assert torch.equal(state[deep], start[deep]) == (config != UNO)
    out = tmp_path / 'ood'
    run_tool('ood_test.py', config, ckpt, '--work-dir', str(out),
             '--datasets', 'synthetic_ood', '--scorers', *scorers,
             '--cfg-options', *QUICK_OPTIONS, env=env)
    res = json.loads((out / 'results.json').read_text())
    assert set(res['results']['synthetic_ood']) == set(scorers)


def test_a_misspelt_head_argument_is_named():
    with pytest.raises(TypeError, match='num_querys'):
        head_model(RBA, num_querys=4)
