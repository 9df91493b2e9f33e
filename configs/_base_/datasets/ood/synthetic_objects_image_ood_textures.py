# Whole-image OOD set of the synthetic objects benchmark (IBE Table 2):
# procedural textures (checkers, stripes, dots, fractal noise: the paper's
# DTD), no known class anywhere, so every pixel is background. No label
# files: tools/ood_test.py reports the model's background IoU
# (BackgroundIoUMetric) on it instead of the pixel OOD metrics.
# Generate it with: python tools/make_synthetic.py data/synthetic
ood_dataset = dict(
    type='WholeImageOODDataset',
    data_root='{{$MMSEG_OOD_DATA:data/synthetic}}/objects/image_ood',
    data_prefix=dict(img_path='textures'))
whole_image = True
