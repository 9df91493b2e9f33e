"""A real model-zoo config, loaded with custom_imports, builds and runs."""
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from conftest import to_bn
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

ZOO = ('mmseg::deeplabv3plus/'
       'deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py')


def test_model_zoo_config_with_custom_imports_builds_and_runs(tmp_path):
    child = tmp_path / 'child.py'
    child.write_text(
        f"_base_ = '{ZOO}'\n"
        "custom_imports = dict(imports=['mmseg_ood'], "
        'allow_failed_imports=False)\n'
        # no fixed 512x1024 input size: the test feeds 64x128 images
        'model = dict(pretrained=None,\n'
        '             data_preprocessor=dict(size=None, size_divisor=32))\n')
    cfg = Config.fromfile(str(child))
    assert 'mmseg_ood' in cfg.custom_imports['imports']
    assert cfg.model.decode_head.type == 'DepthwiseSeparableASPPHead'
    to_bn(cfg.model)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()

    h, w = 64, 128
    inputs = torch.rand(2, 3, h, w) * 255
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                        pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, 19, (1, h, w), dtype=torch.long))
        samples.append(s)
    data = model.data_preprocessor(
        dict(inputs=list(inputs), data_samples=samples), training=True)

    model.train()
    losses = model.loss(data['inputs'], data['data_samples'])
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    grad = model.decode_head.conv_seg.weight.grad
    assert grad is not None and grad.abs().sum() > 0

    model.eval()
    data = model.data_preprocessor(
        dict(inputs=list(inputs), data_samples=samples), training=False)
    with torch.no_grad():
        out = model.predict(data['inputs'], data['data_samples'])
    assert len(out) == 2
    assert out[0].seg_logits.data.shape == (19, h, w)
    assert out[0].pred_sem_seg.data.shape == (1, h, w)
    assert int(out[0].pred_sem_seg.data.max()) < 19
