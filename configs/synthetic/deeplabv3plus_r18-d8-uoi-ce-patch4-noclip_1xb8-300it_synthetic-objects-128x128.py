# CONTROL, not a recipe: UOI + CE without clipping, UOI on coarse soft labels
# (4x4 patches: the paper's down-sampled soft ground truth, sec. 3.1), to test
# whether the coarse labels alone prevent the collapse.
_base_ = './deeplabv3plus_r18-d8-uoi-ce-noclip_1xb8-300it_synthetic-objects-128x128.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='MonitoredLoss',
            loss=dict(type='UOILoss', loss_weight=0.7, label_patch=4)),
        dict(
            type='MonitoredLoss',
            loss=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.3))
    ]))
