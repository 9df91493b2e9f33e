# The objects baseline with twice the schedule (600 iterations: the same
# warm-up, poly decay to 600), the control of the IBE schedule experiment.
_base_ = './deeplabv3plus_r18-d8_1xb8-300it_synthetic-objects-128x128.py'
max_iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(
        type='PolyLR',
        eta_min=1e-5,
        power=0.9,
        begin=50,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
