# The objects baseline with ten times the learning rate on the decode head's
# classifier (decode_head.conv_seg): the control of ibe-lr10.
_base_ = './deeplabv3plus_r18-d8_1xb8-300it_synthetic-objects-128x128.py'
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'decode_head.conv_seg': dict(lr_mult=10.0)}))
