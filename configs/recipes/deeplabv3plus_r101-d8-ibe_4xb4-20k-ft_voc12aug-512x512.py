# Recipe (docs/en/results/recipes.md, "Implicit background estimation, IBE Tables
# 1-4"): implicit background (IBE eq. 5, VOC's background = class 0) on
# the zoo's DeepLabV3+ R101-D8 decode head, fine-tuned with the same 20k
# schedule as the explicit-background control it inherits. It starts from
# the zoo checkpoint converted by tools/convert_checkpoint.py (foreground
# rows of conv_seg kept, the background row dropped); the path below is
# where docs/en/results/recipes.md writes it. The auxiliary head keeps its explicit
# 21-way classifier (as in every IBE config of this project).
_base_ = './deeplabv3plus_r101-d8_4xb4-20k-ft_voc12aug-512x512.py'
load_from = 'checkpoints/deeplabv3plus_r101-d8-ibe_voc12aug_init.pth'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='IBEHead',
        background_index=0,
        head={{_base_.model.decode_head}}))
