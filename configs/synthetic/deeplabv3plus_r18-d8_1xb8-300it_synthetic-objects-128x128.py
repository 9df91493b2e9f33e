# DeepLabV3+ with ResNet-18-V1c on the synthetic objects scenes (VOC-like), trained from
# scratch (no pretrained weights are reachable offline). Built from mmseg's
# own model-zoo bases, as mmseg's deeplabv3plus_r18-d8 Cityscapes config is;
# BN instead of SyncBN so that it runs on one CPU process.
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/datasets/synthetic_objects.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/schedules/synthetic_300it.py',
]
custom_imports = dict(imports=['mmseg_ood'], allow_failed_imports=False)
crop_size = (128, 128)
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
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
# Test-time augmentation that also merges OOD score maps (see README).
tta_model = dict(type='OODSegTTAModel')
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
