# IBE: the recipe's decode head with an implicit background (VOC class 0).
_base_ = './deeplabv3plus_r50-d8_2xb15-20k_voc12aug-224x224.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='IBEHead',
        background_index=0,
        head={{_base_.model.decode_head}}))
