"""Loading of OOD label maps."""
from __future__ import annotations

from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadOODAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` followed by the dataset's raw-value map.

    The OOD datasets put a 256-entry lookup table in each sample
    (``ood_lut``); it maps the raw label values into 0 (ID), 1 (OOD) and
    255 (void). Use it in place of ``LoadAnnotations`` in test pipelines.

    Args:
        **kwargs: As mmseg's ``LoadAnnotations``.
    """

    def _load_seg_map(self, results: dict) -> None:
        super()._load_seg_map(results)
        lut = results.get('ood_lut')
        if lut is None:
            raise KeyError(
                f"LoadOODAnnotations: sample {results.get('img_path')} has "
                'no `ood_lut`; use it with an OOD dataset (OODSegDataset)')
        results['gt_seg_map'] = lut[results['gt_seg_map']]
