# DeepLabV3+ R18-V1c trained from scratch on the synthetic objects scenes.
_base_ = [
    '../_base_/models/deeplabv3plus_r18-d8_synthetic.py',
    '../_base_/datasets/synthetic_objects.py',
    '../_base_/synthetic_runtime.py',
    '../_base_/schedules/synthetic_300it.py',
]
crop_size = (128, 128)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
