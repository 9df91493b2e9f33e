# Softmax baseline with the SCrIBE paper's training recipe (sec. 4):
# DeepLabV3+ R50 on VOC2012 + SBD (~10k images), random scale and 224x224
# crops, batch 30 (2 GPUs x 15), "poly" learning rate 0.01 for the backbone
# and 0.1 for the classifier (the decode head: lr_mult 10), weight decay
# 5e-5. The paper gives no schedule length; mmseg's 20k-iteration VOC
# schedule is kept.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-20k_voc12aug-512x512.py'
custom_imports = dict(imports=['mmseg_ood'], allow_failed_imports=False)
crop_size = (224, 224)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='Pad', size=crop_size),
    dict(type='PackSegInputs')
]
voc_root = 'data/VOCdevkit/VOC2012'
train_dataloader = dict(
    batch_size=15,
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type='PascalVOCDataset',
                data_root=voc_root,
                data_prefix=dict(
                    img_path='JPEGImages', seg_map_path='SegmentationClass'),
                ann_file='ImageSets/Segmentation/train.txt',
                pipeline=train_pipeline),
            dict(
                type='PascalVOCDataset',
                data_root=voc_root,
                data_prefix=dict(
                    img_path='JPEGImages',
                    seg_map_path='SegmentationClassAug'),
                ann_file='ImageSets/Segmentation/aug.txt',
                pipeline=train_pipeline)
        ]))
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-5),
    paramwise_cfg=dict(custom_keys={'decode_head': dict(lr_mult=10.0)}))
