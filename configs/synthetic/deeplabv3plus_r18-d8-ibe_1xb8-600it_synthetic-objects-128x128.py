# IBE with twice the schedule (600 iterations): does IBE from scratch only
# need longer to learn the classes the 300-iteration run never predicts?
_base_ = './deeplabv3plus_r18-d8_1xb8-600it_synthetic-objects-128x128.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='IBEHead',
        background_index=0,
        head={{_base_.model.decode_head}}))
