# UOI + CE (0.7 / 0.3, the SegNet paper's best mix) on the decode head.
_base_ = './deeplabv3plus_r18-d8_1xb8-300it_synthetic-objects-128x128.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='UOILoss', loss_weight=0.7),
        dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.3)
    ]))
