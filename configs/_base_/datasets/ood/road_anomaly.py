# The original RoadAnomaly (label 2 = anomaly).
# Root: $ROAD_ANOMALY_ROOT (frames/<name>.jpg, frames/<name>.labels/labels_semantic.png).
ood_dataset = dict(
    type='RoadAnomalyDataset',
    data_root='{{$ROAD_ANOMALY_ROOT:data/RoadAnomaly_jpg}}')
# Component size filters (SMIYC): 'anomaly_track' 500 / 100 px, 'obstacle_track' 50 / 10 px.
component_preset = 'anomaly_track'
# Dataset name of the SMIYC export (--export-smiyc).
smiyc_name = 'road_anomaly'
