# SMIYC ObstacleTrack validation (RoadObstacle21): the labelled frames.
# Root: $SMIYC_ROOT/dataset_ObstacleTrack (images/*.webp, labels_masks/*).
ood_dataset = dict(
    type='RoadObstacle21Dataset',
    data_root='{{$SMIYC_ROOT:data/smiyc}}/dataset_ObstacleTrack')
