# IBE with the auxiliary FCN head wrapped as IBE too: does the auxiliary
# head's explicit background fight the decode head's implicit one?
_base_ = './deeplabv3plus_r18-d8-ibe_1xb8-300it_synthetic-objects-128x128.py'
model = dict(
    auxiliary_head=dict(
        _delete_=True,
        type='IBEHead',
        background_index=0,
        head={{_base_.model.auxiliary_head}}))
