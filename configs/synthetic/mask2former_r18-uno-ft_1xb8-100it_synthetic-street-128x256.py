# UNO fine-tune of the synthetic Mask2Former (Delić, Grcić & Šegvić, BMVC
# 2024, scaled down): the head gets K + 2 class outputs - the 6 known
# classes, a negative class and "no object" - and outlier-proxy pixels
# (label 254) become ground-truth masks of the negative class (class 6), so
# a query learns to claim them through the usual classification, mask and
# dice losses. The K + 1-way classifier of the trained street Mask2Former is
# loaded into the K + 2-way one (known rows and "no object" copied, the
# negative row freshly initialized). All parameters train. Score with
# `--scorers uno` (plus the usual mask scorers). The street outlier proxy is
# mixed in at 1 proxy image per 4 ID images; 100 iterations of AdamW at a
# constant 1e-4. The starting checkpoint: `load_from` below, or
# --cfg-options load_from=PATH.
_base_ = './mask2former_r18-rba-ft_1xb8-100it_synthetic-street-128x256.py'
num_classes = 6
model = dict(
    backbone=dict(frozen_stages=-1, norm_eval=False),
    decode_head=dict(
        outlier_loss=None,
        trainable=None,
        negative_class=True,
        loss_cls=dict(class_weight=[1.0] * (num_classes + 1) + [0.1])))
