# UOI + CE: 0.7 Union-over-Intersection + 0.3 cross entropy on the decode
# head (the SegNet paper's best mix, on PASCAL), mmseg's VOC recipe
# otherwise, with the gradient clipped: a class present in a crop only as a
# fragment the model misses makes its E[U]/E[I] term explode (docs/en/results/training_comparisons.md, "UOI +
# CE: why it collapsed"). UOI's expectations run over each GPU's minibatch.
# The paper fine-tunes a CE-trained net with UOI: train with mmseg's plain
# config first, then this one with load_from=<its checkpoint>.
_base_ = 'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-20k_voc12aug-512x512.py'
custom_imports = dict(imports=['mmseg_ood'], allow_failed_imports=False)
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='UOILoss', loss_weight=0.7),
        dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.3)
    ]))
# max_norm as in the synthetic UOI configs (chosen there from measured
# norms; not measured at VOC scale)
optim_wrapper = dict(clip_grad=dict(_delete_=True, max_norm=10.0, norm_type=2))
