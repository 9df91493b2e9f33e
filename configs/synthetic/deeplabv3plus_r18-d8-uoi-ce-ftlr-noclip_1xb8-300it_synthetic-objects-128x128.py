# CONTROL, not a recipe: UOI + CE without gradient clipping, with the
# fine-tuning schedule of uoi-ce-ftlr (AdamW at 2e-4, no warm-up, poly
# decay), to test whether the restarted lr 2e-3 alone causes the collapse.
# max_norm=1e30 never clips but makes mmengine log the total gradient norm.
_base_ = './deeplabv3plus_r18-d8-uoi-ce-ftlr_1xb8-300it_synthetic-objects-128x128.py'
optim_wrapper = dict(clip_grad=dict(max_norm=1e30))
