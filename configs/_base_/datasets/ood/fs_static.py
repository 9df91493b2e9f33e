# Fishyscapes Static validation. Root: $FS_STATIC_ROOT (<id>_rgb.png, <id>_labels.png).
ood_dataset = dict(
    type='FishyscapesStaticDataset',
    data_root='{{$FS_STATIC_ROOT:data/fishyscapes/static}}')
# Component size filters (SMIYC): 'anomaly_track' 500 / 100 px, 'obstacle_track' 50 / 10 px.
component_preset = 'anomaly_track'
# Dataset name of the SMIYC export (--export-smiyc).
smiyc_name = 'fs_static'
