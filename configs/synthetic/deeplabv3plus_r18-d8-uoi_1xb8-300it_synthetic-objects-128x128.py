# UOI alone on the decode head (the SegNet paper's "SegNet-UOI"), clipped as
# the UOI + CE config.
_base_ = './deeplabv3plus_r18-d8-uoi-ce_1xb8-300it_synthetic-objects-128x128.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='MonitoredLoss', loss=dict(type='UOILoss', loss_weight=1.0))
    ]))
