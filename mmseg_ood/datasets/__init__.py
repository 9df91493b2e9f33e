"""Datasets and transforms registered into mmseg's registries."""
from .corruption import (CORRUPTIONS, ImageCorruption, corruption_seed,
                         with_corruption)
from .file_checks import check_dataset_files
from .ood_datasets import (FishyscapesLAFDataset, FishyscapesStaticDataset,
                           LostAndFoundDataset, OODFolderDataset,
                           OODSegDataset, RoadAnomaly21Dataset,
                           RoadAnomalyDataset, RoadObstacle21Dataset,
                           SyntheticOODDataset, listed_values, value_lut)
from .outlier_datasets import OutlierMixDataset, OutlierProxyDataset
from .presets import (DatasetPreset, available_dataset_presets,
                      load_dataset_preset)
from .synthetic import SyntheticObjectsDataset, SyntheticStreetDataset
from .transforms import (LoadImageFromFileChecked, LoadOODAnnotations,
                         with_ood_annotations, without_annotations)
from .whole_image import WholeImageOODDataset

__all__ = [
    'check_dataset_files', 'CORRUPTIONS', 'ImageCorruption',
    'corruption_seed', 'with_corruption',
    'SyntheticStreetDataset', 'SyntheticObjectsDataset', 'OODSegDataset',
    'SyntheticOODDataset', 'RoadAnomaly21Dataset', 'RoadObstacle21Dataset',
    'LostAndFoundDataset', 'FishyscapesLAFDataset',
    'FishyscapesStaticDataset', 'RoadAnomalyDataset', 'OODFolderDataset',
    'LoadOODAnnotations', 'LoadImageFromFileChecked', 'with_ood_annotations',
    'without_annotations',
    'value_lut', 'listed_values',
    'OutlierProxyDataset',
    'OutlierMixDataset', 'WholeImageOODDataset', 'DatasetPreset',
    'available_dataset_presets', 'load_dataset_preset'
]
