# UOI + CE, clipped, with the fine-tuning schedule of the UOI diagnosis
# (AdamW at 2e-4, no warm-up, poly decay): the paper's "continue training
# from that net", from a checkpoint trained with cross entropy
# (load_from=...). Its control is `ftlr` (cross entropy, same schedule).
_base_ = './deeplabv3plus_r18-d8-uoi-ce_1xb8-300it_synthetic-objects-128x128.py'
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
