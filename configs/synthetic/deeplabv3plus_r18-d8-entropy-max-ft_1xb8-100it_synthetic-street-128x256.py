# Entropy maximization fine-tune of the demo model (entropy-max paper, sec. 5,
# scaled down): start from the street model that `make demo` trains, mix the
# street outlier proxy into the training set at 1:10, lambda = 0.9, 100
# iterations of Adam at a constant 1e-4 (the paper: 4 epochs at 1e-5 from a
# converged Cityscapes model; the synthetic model is trained for 300
# iterations only, so a larger step). Proxy pixels are labelled 254, which
# plain cross entropy cannot take: both heads use the entropy-maximization
# loss. The starting checkpoint: `load_from` below, or
# --cfg-options load_from=PATH.
_base_ = './deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py'
load_from = 'work_dirs/demo/iter_300.pth'
model = dict(
    decode_head=dict(
        loss_decode=dict(
            _delete_=True, type='EntropyMaximizationLoss', ood_weight=0.9)),
    auxiliary_head=dict(
        loss_decode=dict(
            _delete_=True,
            type='EntropyMaximizationLoss',
            ood_weight=0.9,
            loss_weight=0.4)))
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='OutlierMixDataset',
        ratio=0.1,
        dataset={{_base_.train_dataloader.dataset}},
        outlier=dict(
            type='OutlierProxyDataset',
            data_root='{{$MMSEG_OOD_DATA:data/synthetic}}/street/'
            'outlier_proxy',
            pipeline={{_base_.train_pipeline}})))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999)))
max_iters = 100
param_scheduler = []
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=max_iters,
        max_keep_ckpts=1))
