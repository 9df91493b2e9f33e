# Fishyscapes LostAndFound validation (100 frames).
# Root: $FS_LAF_ROOT (images/<fid>_leftImg8bit.png, labels/<fid>_fishy-labels.png).
ood_dataset = dict(
    type='FishyscapesLAFDataset',
    data_root='{{$FS_LAF_ROOT:data/fishyscapes/lost_and_found}}')
