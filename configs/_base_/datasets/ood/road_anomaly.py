# The original RoadAnomaly (label 2 = anomaly).
# Root: $ROAD_ANOMALY_ROOT (frames/<name>.jpg, frames/<name>.labels/labels_semantic.png).
ood_dataset = dict(
    type='RoadAnomalyDataset',
    data_root='{{$ROAD_ANOMALY_ROOT:data/RoadAnomaly_jpg}}')
