# Mask2Anomaly outlier-supervised fine-tune of the synthetic Mask2Former
# (Rai et al., ICCV 2023; the authors' config
# configs/cityscapes/semantic-segmentation/anomaly_ft.yaml, scaled down):
# the RbA fine-tune's set-up (the trained street Mask2Former as the start,
# the street outlier proxy mixed in, the backbone frozen - FREEZE_AT: 5 -,
# 100 iterations of AdamW at a constant 1e-4; the authors: 5000 iterations
# at 1e-5) with Mask2Anomaly's margin loss on -max_k f_k (margin 1, weight
# 1, on every decoder layer) instead of RbA's, the pixel and transformer
# decoders trained too, and the authors' mix ratio, one proxy image per
# five (ANOMALY_MIX_RATIO 0.2). Proxy pixels (label 254) are void for the
# mask classification losses and reach Mask2AnomalyMarginLoss as a pixel
# mask.
# The starting checkpoint: `load_from`, or --cfg-options load_from=PATH.
_base_ = './mask2former_r18-rba-ft_1xb8-100it_synthetic-street-128x256.py'
model = dict(
    decode_head=dict(
        outlier_loss=dict(_delete_=True, type='Mask2AnomalyMarginLoss'),
        trainable=None))
train_dataloader = dict(dataset=dict(ratio=0.2))
