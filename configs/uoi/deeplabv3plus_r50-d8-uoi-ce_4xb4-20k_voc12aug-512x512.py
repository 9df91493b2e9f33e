# UOI + CE: 0.7 Union-over-Intersection + 0.3 cross entropy on the decode
# head (the SegNet paper's best mix, on PASCAL), mmseg's VOC recipe
# otherwise. UOI's expectations run over each GPU's minibatch.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-20k_voc12aug-512x512.py'
custom_imports = dict(imports=['mmseg_ood'], allow_failed_imports=False)
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='UOILoss', loss_weight=0.7),
        dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.3)
    ]))
