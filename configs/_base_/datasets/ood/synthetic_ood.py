# The OOD split of the synthetic street benchmark (SMIYC format).
# Generate it with: python tools/make_synthetic.py data/synthetic
ood_dataset = dict(
    type='SyntheticOODDataset',
    data_root='{{$MMSEG_OOD_DATA:data/synthetic}}/street/ood')
