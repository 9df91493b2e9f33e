# SMIYC AnomalyTrack validation (RoadAnomaly21): 10 labelled frames.
# Root: $SMIYC_ROOT/dataset_AnomalyTrack (images/*.jpg, labels_masks/*).
ood_dataset = dict(
    type='RoadAnomaly21Dataset',
    data_root='{{$SMIYC_ROOT:data/smiyc}}/dataset_AnomalyTrack')
# Component size filters (SMIYC): 'anomaly_track' 500 / 100 px, 'obstacle_track' 50 / 10 px.
component_preset = 'anomaly_track'
# Dataset name of the SMIYC export (--export-smiyc).
smiyc_name = 'AnomalyTrack-all'
