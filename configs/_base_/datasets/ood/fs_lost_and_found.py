# Fishyscapes LostAndFound validation (100 frames).
# Root: $FS_LAF_ROOT (images/<fid>_leftImg8bit.png, labels/<fid>_fishy-labels.png).
ood_dataset = dict(
    type='FishyscapesLAFDataset',
    data_root='{{$FS_LAF_ROOT:data/fishyscapes/lost_and_found}}')
# Component size filters (SMIYC): 'anomaly_track' 500 / 100 px, 'obstacle_track' 50 / 10 px.
component_preset = 'obstacle_track'
# Dataset name of the SMIYC export (--export-smiyc).
smiyc_name = 'LostAndFound-test'
