# The OOD split of the synthetic objects benchmark (SMIYC format): VOC-like
# scenes with objects of unseen shapes and textures.
# Generate it with: python tools/make_synthetic.py data/synthetic
ood_dataset = dict(
    type='SyntheticOODDataset',
    data_root='{{$MMSEG_OOD_DATA:data/synthetic}}/objects/ood')
# Small images (128x256): the small-object size filters.
# Component size filters (SMIYC): 'anomaly_track' 500 / 100 px, 'obstacle_track' 50 / 10 px.
component_preset = 'obstacle_track'
# Dataset name of the SMIYC export (--export-smiyc).
smiyc_name = 'synthetic_objects_ood'
