# Recipe (docs/en/results/recipes.md, "Norm decoupling, thesis Table 5.1" and the
# "Plain" row of "Entropy maximization"): OOD scoring of mmseg's model-zoo
# DeepLabV3+ R101-D8 Cityscapes checkpoint (80k, 512x1024; the zoo reports
# 80.97 mIoU on Cityscapes val, single scale), post hoc, with
# tools/ood_test.py. The model, the test pipeline (images resized to
# 2048x1024, whole-image inference) and the ID test set (Cityscapes val,
# data/cityscapes, mmseg's layout with *_labelTrainIds.png) are the zoo
# config's; this file only loads the plugin. The checkpoint to download:
#   https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3plus/deeplabv3plus_r101-d8_512x1024_80k_cityscapes/deeplabv3plus_r101-d8_512x1024_80k_cityscapes_20200606_114143-068fcfe9.pth
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmseg_ood'], allow_failed_imports=False)
