# IBE with class-balanced cross entropy (the weights of the `balanced`
# baseline): does balancing the classes let IBE learn the rare ones in 300
# iterations?
_base_ = './deeplabv3plus_r18-d8-balanced_1xb8-300it_synthetic-objects-128x128.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='IBEHead',
        background_index=0,
        head={{_base_.model.decode_head}}))
