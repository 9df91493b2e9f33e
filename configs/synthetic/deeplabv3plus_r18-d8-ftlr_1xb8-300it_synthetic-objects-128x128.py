# The objects baseline (cross entropy) with the fine-tuning schedule of the
# UOI diagnosis (AdamW at 2e-4, no warm-up, poly decay): the control of
# uoi-ce-ftlr-noclip.
_base_ = './deeplabv3plus_r18-d8_1xb8-300it_synthetic-objects-128x128.py'
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-5,
        power=0.9,
        begin=0,
        end=300,
        by_epoch=False)
]
