# Mask2Anomaly outlier-supervised fine-tune of the synthetic Mask2Former
# (Rai et al., ICCV 2023; the authors' config
# configs/cityscapes/semantic-segmentation/anomaly_ft.yaml, scaled down):
# start from the trained street Mask2Former, mix the street outlier proxy
# into the training set (ratio 0.2, the authors' ANOMALY_MIX_RATIO), freeze
# the backbone (FREEZE_AT: 5: frozen_stages=4, BN in eval mode) and train
# the pixel decoder and the transformer decoder with Mask2Anomaly's margin
# loss on -max_k f_k (margin 1, weight 1, on every decoder layer) beside the
# usual Mask2Former losses. Proxy pixels (label 254) are void for the mask
# classification losses and reach Mask2AnomalyMarginLoss as a pixel mask.
# 100 iterations of AdamW at a constant 1e-4, as the other fine-tunes here
# (the authors: 5000 iterations at 1e-5).
# The starting checkpoint: `load_from` below, or --cfg-options load_from=PATH.
_base_ = './mask2former_r18_1xb8-300it_synthetic-street-128x256.py'
load_from = 'work_dirs/mask2former_street/iter_300.pth'
model = dict(
    backbone=dict(frozen_stages=4, norm_eval=True),
    decode_head=dict(
        type='OutlierMask2FormerHead',
        outlier_loss=dict(type='Mask2AnomalyMarginLoss')))
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='OutlierMixDataset',
        ratio=0.2,
        dataset={{_base_.train_dataloader.dataset}},
        outlier=dict(
            type='OutlierProxyDataset',
            data_root='{{$MMSEG_OOD_DATA:data/synthetic}}/street/'
            'outlier_proxy',
            pipeline={{_base_.train_pipeline}})))
optim_wrapper = dict(optimizer=dict(lr=1e-4))
max_iters = 100
param_scheduler = []
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=max_iters,
        max_keep_ckpts=1))
