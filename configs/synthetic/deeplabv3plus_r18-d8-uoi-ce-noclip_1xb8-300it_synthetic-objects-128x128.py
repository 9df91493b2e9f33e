# CONTROL, not a recipe: UOI + CE without gradient clipping, as the project
# shipped it before, to measure the collapse (docs/en/results/training_comparisons.md, "UOI + CE: why it
# collapsed"). max_norm=1e30 never clips but makes mmengine log the total
# gradient norm (`grad_norm`).
_base_ = './deeplabv3plus_r18-d8-uoi-ce_1xb8-300it_synthetic-objects-128x128.py'
optim_wrapper = dict(clip_grad=dict(max_norm=1e30))
