# SMIYC ObstacleTrack validation (RoadObstacle21): the labelled frames.
# Root: $SMIYC_ROOT/dataset_ObstacleTrack (images/*.webp, labels_masks/*).
ood_dataset = dict(
    type='RoadObstacle21Dataset',
    data_root='{{$SMIYC_ROOT:data/smiyc}}/dataset_ObstacleTrack')
# Component size filters (SMIYC): 'anomaly_track' 500 / 100 px, 'obstacle_track' 50 / 10 px.
component_preset = 'obstacle_track'
# Dataset name of the SMIYC export (--export-smiyc).
smiyc_name = 'ObstacleTrack-all'
