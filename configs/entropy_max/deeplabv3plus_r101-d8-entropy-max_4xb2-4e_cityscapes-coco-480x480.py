# Entropy maximization fine-tune (entropy-max paper, sec. 5): start from the
# model-zoo DeepLabV3+ R101 Cityscapes checkpoint, mix the COCO outlier proxy
# into Cityscapes train at 297 : 2975 (~1:10, resampled each epoch), random
# 480x480 crops, 4 epochs, lambda = 0.9, Adam with learning rate 1e-5.
# Build the proxy with: python tools/prepare_coco_ood.py COCO_ROOT
# data/coco_ood (or set COCO_OOD_ROOT).
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmseg_ood'], allow_failed_imports=False)
load_from = ('https://download.openmmlab.com/mmsegmentation/v0.5/'
             'deeplabv3plus/deeplabv3plus_r101-d8_512x1024_80k_cityscapes/'
             'deeplabv3plus_r101-d8_512x1024_80k_cityscapes_20200606_114143'
             '-068fcfe9.pth')
crop_size = (480, 480)
data_preprocessor = dict(size=crop_size)
# Proxy pixels are labelled 254, which plain cross entropy cannot take:
# both heads use the entropy-maximization loss.
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        loss_decode=dict(
            _delete_=True, type='EntropyMaximizationLoss', ood_weight=0.9)),
    auxiliary_head=dict(
        loss_decode=dict(
            _delete_=True,
            type='EntropyMaximizationLoss',
            ood_weight=0.9,
            loss_weight=0.4)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 1024),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='Pad', size=crop_size),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='OutlierMixDataset',
        ratio=297 / 2975,
        dataset=dict(
            type='CityscapesDataset',
            data_root='data/cityscapes/',
            data_prefix=dict(
                img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
            pipeline=train_pipeline),
        outlier=dict(
            type='OutlierProxyDataset',
            data_root='{{$COCO_OOD_ROOT:data/coco_ood}}',
            img_suffix='.jpg',
            pipeline=train_pipeline)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-5))
param_scheduler = []
train_cfg = dict(
    _delete_=True, type='EpochBasedTrainLoop', max_epochs=4, val_interval=4)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=1))
log_processor = dict(by_epoch=True)
