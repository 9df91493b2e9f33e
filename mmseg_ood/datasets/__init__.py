"""Datasets registered into ``mmseg.registry.DATASETS``."""
from .synthetic import SyntheticObjectsDataset, SyntheticStreetDataset

__all__ = ['SyntheticStreetDataset', 'SyntheticObjectsDataset']
