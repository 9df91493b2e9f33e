# RbA outlier-supervised fine-tune of the synthetic Mask2Former (RbA, Nayal et
# al., ICCV 2023, sec. 3.3; the authors' config
# maskformer2_swin_base_IN21k_384_bs16_90k_1dl_coco_mix_finetune.yaml, scaled
# down): start from the trained street Mask2Former, mix the street outlier
# proxy into the training set (1 proxy image per 4 ID images: the authors
# paste a COCO object into 20 % of the images), and train only what the
# paper trains - the backbone (FREEZE_BACKBONE: frozen_stages=4, BN in eval
# mode), the pixel decoder (FREEZE_PIXEL_DECODER) and the transformer decoder
# except its class and mask MLPs (FREEZE_TRANSFORMER_DECODER_EXCEPT_MLP) are
# frozen - with the squared-hinge loss on the RbA score (inlier margin -1,
# outlier margin -0.1, weight 1, on every decoder layer) beside the usual
# Mask2Former losses. Proxy pixels (label 254) are void for the mask
# classification losses and reach RbAOutlierLoss as a pixel mask.
# 100 iterations of AdamW at a constant 1e-4 (the authors: 5000 of 90000
# iterations at the base rate 1e-4).
# The starting checkpoint: `load_from` below, or --cfg-options load_from=PATH.
_base_ = './mask2former_r18_1xb8-300it_synthetic-street-128x256.py'
load_from = 'work_dirs/mask2former_street/iter_300.pth'
model = dict(
    backbone=dict(frozen_stages=4, norm_eval=True),
    decode_head=dict(
        type='OutlierMask2FormerHead',
        outlier_loss=dict(type='RbAOutlierLoss'),
        trainable=('cls_embed', 'mask_embed')))
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='OutlierMixDataset',
        ratio=0.25,
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
