# SCrIBE: implicit background (class 0) and sigmoid cross entropy on all
# components; same schedule as the baseline.
_base_ = './deeplabv3plus_r18-d8_1xb8-300it_synthetic-objects-128x128.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SCrIBEHead',
        background_index=0,
        head={{_base_.model.decode_head}}))
