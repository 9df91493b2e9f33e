# CONTROL, not a recipe: UOI + CE without clipping, with a fine-tuning
# schedule (AdamW at a tenth of the scratch peak lr, 2e-4, no warm-up, poly
# decay), to test whether the restarted lr 2e-3 alone causes the collapse.
_base_ = './deeplabv3plus_r18-d8-uoi-ce-noclip_1xb8-300it_synthetic-objects-128x128.py'
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
