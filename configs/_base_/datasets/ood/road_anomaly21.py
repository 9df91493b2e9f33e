# SMIYC AnomalyTrack validation (RoadAnomaly21): 10 labelled frames.
# Root: $SMIYC_ROOT/dataset_AnomalyTrack (images/*.jpg, labels_masks/*).
ood_dataset = dict(
    type='RoadAnomaly21Dataset',
    data_root='{{$SMIYC_ROOT:data/smiyc}}/dataset_AnomalyTrack')
