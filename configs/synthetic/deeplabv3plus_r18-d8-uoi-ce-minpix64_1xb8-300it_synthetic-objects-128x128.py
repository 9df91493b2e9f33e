# CONTROL of the UOI diagnosis (the project's deviation from the paper, not
# the paper's loss): UOI + CE, clipped, with classes of at most 64 labelled
# pixels in the batch left out of UOI's mean (UOILoss min_class_pixels), to
# test whether the fragments that trigger the spikes explain the rest of
# the gap to cross entropy.
_base_ = './deeplabv3plus_r18-d8-uoi-ce_1xb8-300it_synthetic-objects-128x128.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='MonitoredLoss',
            loss=dict(type='UOILoss', loss_weight=0.7, min_class_pixels=64)),
        dict(
            type='MonitoredLoss',
            loss=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.3))
    ]))
