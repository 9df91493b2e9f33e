# LostAndFound test with the SMIYC label mapping (1 -> ID, 2..200 -> OOD).
# Root: $LAF_ROOT (leftImg8bit/test/<scene>/..., gtCoarse/test/<scene>/...).
ood_dataset = dict(
    type='LostAndFoundDataset',
    data_root='{{$LAF_ROOT:data/lost_and_found}}')
# Component size filters (SMIYC): 'anomaly_track' 500 / 100 px, 'obstacle_track' 50 / 10 px.
component_preset = 'obstacle_track'
# Dataset name of the SMIYC export (--export-smiyc).
smiyc_name = 'LostAndFound-test'
