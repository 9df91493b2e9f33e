# DeepLabV3+ with ResNet-18-V1c for the synthetic benchmark (6 classes in
# both variants), from mmseg's own model-zoo base, as mmseg's
# deeplabv3plus_r18-d8 Cityscapes config sets it up. Trained from scratch (no
# pretrained weights are reachable offline); BN instead of SyncBN so that it
# runs in one CPU process.
_base_ = 'mmseg::_base_/models/deeplabv3plus_r50-d8.py'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(depth=18, norm_cfg=norm_cfg),
    decode_head=dict(
        c1_in_channels=64,
        c1_channels=12,
        in_channels=512,
        channels=128,
        num_classes=6,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=256, channels=64, num_classes=6, norm_cfg=norm_cfg))
