# Mask2Former R18 (mask classification) trained from scratch on the
# synthetic street scenes: the model family whose per-query scores (rba,
# no_object) the field's strongest anomaly segmenters use.
_base_ = [
    '../_base_/models/mask2former_r18_synthetic.py',
    '../_base_/datasets/synthetic_street.py',
    '../_base_/synthetic_runtime.py',
    '../_base_/schedules/synthetic_300it.py',
]
crop_size = (128, 256)
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor)
# mmseg's Mask2Former configs: AdamW, lower lr for the backbone, no weight
# decay on queries and norms
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1, decay_mult=1.0),
            'query_embed': dict(lr_mult=1.0, decay_mult=0.0),
            'query_feat': dict(lr_mult=1.0, decay_mult=0.0),
            'level_embed': dict(lr_mult=1.0, decay_mult=0.0),
        },
        norm_decay_mult=0.0))
