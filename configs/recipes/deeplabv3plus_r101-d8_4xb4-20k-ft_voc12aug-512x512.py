# Recipe (docs/en/results/recipes.md, "Implicit background estimation, IBE Tables
# 1-4"): the explicit-background control. mmseg's model-zoo DeepLabV3+
# R101-D8 VOC2012 + aug checkpoint (40k iterations, 512x512; the zoo
# reports 78.62 mIoU on VOC val, single scale) is fine-tuned with the zoo's
# own 20k-iteration VOC schedule (SGD, lr 0.01, poly, batch 4 x 4), exactly
# as its IBE counterpart
# (deeplabv3plus_r101-d8-ibe_4xb4-20k-ft_voc12aug-512x512.py), so that the
# two differ only in the head. Testing reports VOC val mIoU (Table 1), ECE
# (Table 3) and the expected non-distinctiveness of IBE eq. 4 (Table 4,
# background = class 0), as fractions. The same config tests the
# downloaded checkpoint as it is. Data: data/VOCdevkit/VOC2012 in mmseg's
# layout (SegmentationClassAug and ImageSets/Segmentation/aug.txt for
# training).
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-512x512.py'
custom_imports = dict(imports=['mmseg_ood'], allow_failed_imports=False)
load_from = ('https://download.openmmlab.com/mmsegmentation/v0.5/'
             'deeplabv3plus/deeplabv3plus_r101-d8_512x512_40k_voc12aug/'
             'deeplabv3plus_r101-d8_512x512_40k_voc12aug_20200613_205333'
             '-faf03387.pth')
test_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    # 15 bins as Guo et al. 2017 and the IBE paper
    dict(type='ECEMetric', num_bins=15, background_index=0)
]
