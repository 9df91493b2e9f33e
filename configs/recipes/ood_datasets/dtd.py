# Whole-image OOD preset (docs/en/results/recipes.md, IBE Table 2): the Describable
# Textures Dataset, every image (5640 in 47 categories), no VOC object in
# any of them, so every pixel is background. No label files.
# Root: $DTD_ROOT (images/<category>/<name>.jpg, as the DTD archive unpacks).
ood_dataset = dict(
    type='WholeImageOODDataset',
    data_root='{{$DTD_ROOT:data/dtd}}',
    data_prefix=dict(img_path='images'),
    img_suffix='.jpg')
whole_image = True
