# Fishyscapes Static validation. Root: $FS_STATIC_ROOT (<id>_rgb.png, <id>_labels.png).
ood_dataset = dict(
    type='FishyscapesStaticDataset',
    data_root='{{$FS_STATIC_ROOT:data/fishyscapes/static}}')
