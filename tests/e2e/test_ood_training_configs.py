"""The papers' configs and their synthetic counterparts: they load, build,
train through tools/train.py and score through tools/ood_test.py."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import QUICK_CFG, REPO, to_bn
from mmseg.registry import MODELS

CONFIGS = osp.join(REPO, 'configs')
SYNTHETIC = 'deeplabv3plus_r18-d8{}_1xb8-300it_synthetic-objects-128x128.py'


def _synthetic(variant):
    tag = '' if variant == 'baseline' else f'-{variant}'
    return osp.join(CONFIGS, 'synthetic', SYNTHETIC.format(tag))


def _build(cfg):
    model_cfg = cfg.model
    model_cfg.pretrained = None
    to_bn(model_cfg)
    init_default_scope('mmseg')
    return MODELS.build(model_cfg)


def test_voc_recipe_configs_wrap_the_zoo_head():
    root = osp.join(CONFIGS, 'scribe')
    base = Config.fromfile(
        osp.join(root, 'deeplabv3plus_r50-d8_2xb15-20k_voc12aug-224x224.py'))
    # scribe sec. 4: 224 crops, batch 2 x 15, lr 0.01 / 0.1, wd 5e-5
    assert base.crop_size == (224, 224)
    assert base.train_dataloader.batch_size == 15
    assert base.optim_wrapper.optimizer.lr == 0.01
    assert base.optim_wrapper.optimizer.weight_decay == 5e-5
    assert base.optim_wrapper.paramwise_cfg.custom_keys[
        'decode_head'].lr_mult == 10.0
    for ds in base.train_dataloader.dataset.datasets:
        crop = [t for t in ds.pipeline if t['type'] == 'RandomCrop'][0]
        assert crop['crop_size'] == (224, 224)
    for kind, name in (('IBEHead', 'ibe'), ('SCrIBEHead', 'scribe')):
        cfg = Config.fromfile(osp.join(
            root, f'deeplabv3plus_r50-d8-{name}_2xb15-20k_voc12aug-'
            '224x224.py'))
        head = cfg.model.decode_head
        assert head.type == kind and head.background_index == 0
        assert head.head == base.model.decode_head
        assert cfg.optim_wrapper == base.optim_wrapper
        model = _build(cfg)
        assert model.decode_head.num_classes == 21
        assert model.decode_head.head.conv_seg.out_channels == 20
        assert model.auxiliary_head.conv_seg.out_channels == 21


def test_entropy_max_cityscapes_config_is_the_papers_setting():
    cfg = Config.fromfile(glob.glob(
        osp.join(CONFIGS, 'entropy_max', '*cityscapes*.py'))[0])
    assert cfg.load_from.endswith('.pth')
    assert cfg.optim_wrapper.optimizer == dict(type='Adam', lr=1e-5)
    assert cfg.train_cfg.max_epochs == 4
    mix = cfg.train_dataloader.dataset
    assert mix.type == 'OutlierMixDataset'
    assert mix.ratio == pytest.approx(297 / 2975)
    assert mix.outlier.img_suffix == '.jpg'
    crop = [t for t in mix.dataset.pipeline if t['type'] == 'RandomCrop'][0]
    assert crop['crop_size'] == (480, 480)
    assert cfg.model.decode_head.loss_decode == dict(
        type='EntropyMaximizationLoss', ood_weight=0.9)
    model = _build(cfg)
    assert model.decode_head.loss_decode.ood_weight == 0.9
    assert model.auxiliary_head.loss_decode.loss_name == 'loss_entropy_max'


def test_uoi_ce_config_combines_the_losses():
    cfg = Config.fromfile(glob.glob(osp.join(CONFIGS, 'uoi', '*.py'))[0])
    model = _build(cfg)
    names = [(type(x).__name__, x.loss_weight)
             for x in model.decode_head.loss_decode]
    assert names == [('UOILoss', 0.7), ('CrossEntropyLoss', 0.3)]
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=10.0, norm_type=2)


@pytest.mark.parametrize('variant', ['ibe', 'scribe', 'uoi-ce',
                                     'entropy-max'])
def test_synthetic_variants_differ_from_the_baseline_only_as_named(variant):
    base = Config.fromfile(_synthetic('baseline'))
    cfg = Config.fromfile(_synthetic(variant))
    if variant == 'uoi-ce':  # UOI's spikes clipped (test_uoi_diagnostics)
        assert cfg.optim_wrapper.pop('clip_grad') == dict(max_norm=10.0,
                                                          norm_type=2)
        base.optim_wrapper.pop('clip_grad')
    assert cfg.optim_wrapper == base.optim_wrapper
    assert cfg.train_cfg == base.train_cfg
    assert cfg.model.backbone == base.model.backbone
    if variant in ('ibe', 'scribe'):
        assert cfg.model.decode_head.head == base.model.decode_head
    model = _build(cfg)
    model.train()
    x = torch.rand(2, 3, 64, 64) * 255
    assert model(x, mode='tensor').shape[1] == 6


def _controlled(variant, iters='300it'):
    tag = '' if variant == 'baseline' else f'-{variant}'
    return osp.join(
        CONFIGS, 'synthetic',
        f'deeplabv3plus_r18-d8{tag}_1xb8-{iters}_synthetic-objects-128x128.py')


@pytest.mark.parametrize('variant', ['baseline', 'ibe'])
def test_twice_the_schedule_changes_only_its_length(variant):
    """The schedule control of the IBE diagnosis: same warm-up, poly decay
    to 600 instead of 300, everything else as the 300-iteration config."""
    short = Config.fromfile(_controlled(variant))
    long = Config.fromfile(_controlled(variant, '600it'))
    assert long.train_cfg.max_iters == 600
    assert long.default_hooks.checkpoint.interval == 600
    warm, poly = long.param_scheduler
    assert warm == short.param_scheduler[0]
    assert poly == dict(short.param_scheduler[1], end=600)
    assert long.model == short.model
    assert long.optim_wrapper == short.optim_wrapper
    assert long.train_dataloader == short.train_dataloader


def test_ibe_controls_change_what_they_name():
    ibe = Config.fromfile(_synthetic('ibe'))
    aux = Config.fromfile(_controlled('ibe-aux'))
    assert aux.model.decode_head == ibe.model.decode_head
    assert aux.model.auxiliary_head.type == 'IBEHead'
    assert aux.model.auxiliary_head.head == ibe.model.auxiliary_head
    model = _build(aux)
    assert model.auxiliary_head.head.conv_seg.out_channels == 5
    # lr x10 on the decode head's classifier only (not the auxiliary
    # head's conv_seg): the parameter groups mmengine builds; `lr10` is
    # the same change to the baseline (its control)
    lr10 = Config.fromfile(_controlled('ibe-lr10'))
    assert lr10.model == ibe.model
    assert _ten_times_lr(lr10) == ['decode_head.head.conv_seg.bias',
                                   'decode_head.head.conv_seg.weight']
    base_lr10 = Config.fromfile(_controlled('lr10'))
    assert base_lr10.model == Config.fromfile(_synthetic('baseline')).model
    assert _ten_times_lr(base_lr10) == ['decode_head.conv_seg.bias',
                                        'decode_head.conv_seg.weight']


def _ten_times_lr(cfg):
    """Parameters with 10x the base lr; every other one has the base lr."""
    from mmengine.optim import build_optim_wrapper
    model = _build(cfg)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    base_lr = cfg.optim_wrapper.optimizer.lr
    names = {id(p): n for n, p in model.named_parameters()}
    lrs = {names[id(p)]: group['lr'] for group in optimizer.param_groups
           for p in group['params']}
    fast = sorted(n for n, lr in lrs.items() if lr == 10 * base_lr)
    assert all(lr == base_lr for n, lr in lrs.items() if n not in fast)
    return fast


@pytest.mark.slow  # trains: opt-in (--run-slow), the suite stays < 20 min
def test_ibe_and_entropy_max_train_and_score_end_to_end(
        synthetic_root, tmp_path, trained_work_dir, monkeypatch):
    """Through what tools/train.py and tools/ood_test.py call, in-process
    (the command lines themselves are tested in test_tools.py and
    test_ood_test_tool.py)."""
    from mmseg_ood.apis import ood_test, train
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    # entropy maximization: the mixed dataset and the 254 labels train
    no_val = dict(QUICK_CFG, **{'train_cfg.val_interval': 10})
    runner = train(_synthetic('entropy-max'), str(tmp_path / 'entropy_max'),
                   cfg_options=no_val)
    logged = runner.message_hub.log_scalars
    assert 'train/decode.loss_entropy_max' in logged
    assert np.isfinite(logged['train/decode.loss_entropy_max'].current())
    # IBE: train, then score with the background scorer by default
    work = tmp_path / 'ibe'
    train(_synthetic('ibe'), str(work), cfg_options=no_val)
    ckpt = (work / 'last_checkpoint').read_text().strip()
    results = ood_test(_synthetic('ibe'), ckpt, str(tmp_path / 'ood'),
                       datasets=['synthetic_objects_ood'], id_eval=False,
                       cfg_options=dict(QUICK_CFG))
    per = results['results']['synthetic_objects_ood']
    assert {'background', 'msp', 'n_energy'} <= set(per)
    assert 0.0 <= per['background']['auroc'] <= 1.0
    # a plain checkpoint (the street baseline) does not load into the IBE
    # config
    base_ckpt = (osp.join(trained_work_dir, 'last_checkpoint'))
    base_ckpt = open(base_ckpt).read().strip()
    with pytest.raises(ValueError) as info:
        ood_test(_synthetic('ibe'), base_ckpt, str(tmp_path / 'bad'),
                 datasets=['synthetic_objects_ood'], id_eval=False)
    assert base_ckpt in str(info.value)
    assert 'decode_head.head' in str(info.value)
