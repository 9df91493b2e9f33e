# UOI + CE (0.7 / 0.3, the SegNet paper's best mix) on the decode head, with
# gradient clipping. Without it a class present in a crop only as a fragment
# the model misses makes its E[U]/E[I] term explode, and AdamW takes the step
# (docs/en/results/training_comparisons.md, "UOI + CE: why it collapsed"). Both terms are wrapped in
# MonitoredLoss: each logs the gradient norm it sends to the logits, UOI its
# largest per-class term and where that class is (tools/training_curves.py).
_base_ = './deeplabv3plus_r18-d8_1xb8-300it_synthetic-objects-128x128.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(type='MonitoredLoss', loss=dict(type='UOILoss',
                                             loss_weight=0.7)),
        dict(
            type='MonitoredLoss',
            loss=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.3))
    ]))
# max_norm from the measured total gradient norms of the unclipped run
optim_wrapper = dict(clip_grad=dict(_delete_=True, max_norm=10.0, norm_type=2))
