# The OOD split of the synthetic objects benchmark (SMIYC format): VOC-like
# scenes with objects of unseen shapes and textures.
# Generate it with: python tools/make_synthetic.py data/synthetic
ood_dataset = dict(
    type='SyntheticOODDataset',
    data_root='{{$MMSEG_OOD_DATA:data/synthetic}}/objects/ood')
