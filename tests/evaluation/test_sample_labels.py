"""Every metric reading a sample's OOD label map names itself and the
missing field, and reads the map from a PixelData or its dict alike."""
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

from mmseg_ood.engine.query_selection import QueryStatisticsMetric
from mmseg_ood.errors import MissingFieldError
from mmseg_ood.evaluation import OODMetric
from mmseg_ood.evaluation.functional.inputs import sample_ood_labels
from mmseg_ood.evaluation.metrics.operating_point import OperatingPointMetric


def test_map_from_pixel_data_or_its_dict():
    lab = torch.tensor([[[0, 1], [255, 1]]], dtype=torch.uint8)
    for field in (PixelData(data=lab), dict(data=lab)):
        got = sample_ood_labels(dict(gt_sem_seg=field), 'gt_sem_seg', 'me')
        np.testing.assert_array_equal(got, [[0, 1], [255, 1]])


@pytest.mark.parametrize('read,owner', [
    (lambda s: OODMetric(scorers=['msp']).process_sample(s), 'OODMetric'),
    (lambda s: QueryStatisticsMetric(2).process_sample(s),
     'query selection'),
    (lambda s: OperatingPointMetric('msp', 'best_f1')._labels_of(s, (2, 2)),
     'OperatingPointMetric'),
])
def test_missing_map_names_the_reader_and_the_field(read, owner):
    sample = dict(ood_scores=dict(msp=torch.zeros(2, 2)), img_path='a.png')
    with pytest.raises(MissingFieldError,
                       match=f"{owner}.*no 'gt_sem_seg' OOD label map"):
        read(sample)
