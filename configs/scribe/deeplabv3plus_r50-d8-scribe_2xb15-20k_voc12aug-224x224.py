# SCrIBE: implicit background (VOC class 0) and sigmoid cross entropy on all
# 21 components (SCrIBEHead switches the head's CrossEntropyLoss to sigmoid).
_base_ = './deeplabv3plus_r50-d8_2xb15-20k_voc12aug-224x224.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SCrIBEHead',
        background_index=0,
        head={{_base_.model.decode_head}}))
