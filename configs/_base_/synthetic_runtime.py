# mmseg's default runtime plus what every synthetic config shares.
_base_ = 'mmseg::_base_/default_runtime.py'
custom_imports = dict(imports=['mmseg_ood'], allow_failed_imports=False)
# Test-time augmentation that also merges OOD score maps (docs/en/methods/test_time_augmentation.md).
tta_model = dict(type='OODSegTTAModel')
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
