# IBE with ten times the learning rate on the decode head's classifier
# (decode_head.head.conv_seg, the foreground rows IBE keeps): is the
# classifier too slow to separate the late classes from the background?
_base_ = './deeplabv3plus_r18-d8-ibe_1xb8-300it_synthetic-objects-128x128.py'
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'decode_head.head.conv_seg': dict(lr_mult=10.0)}))
