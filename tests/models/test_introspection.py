"""Unwrapping without type checks: a model that wraps a segmentor names it
in ``wrapped_segmentor`` (the protocol of ``unwrap_segmentor``)."""
import torch.nn as nn
from mmengine.model import MMDistributedDataParallel

from mmseg_ood.models.introspection import (unwrap_runtime_wrappers,
                                            unwrap_segmentor)


class Segmentor(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)


class Wrapper(nn.Module):
    """Any wrapper of a segmentor, unknown to the introspection module."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    @property
    def wrapped_segmentor(self):
        return self.inner


class TTA(nn.Module):
    """Shaped like mmseg's SegTTAModel: ``module`` and ``merge_preds``."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def merge_preds(self, samples):
        return samples


def ddp(module):
    """An MMDistributedDataParallel shell around ``module`` (no process
    group needed: only ``.module`` is read)."""
    wrapper = MMDistributedDataParallel.__new__(MMDistributedDataParallel)
    nn.Module.__init__(wrapper)
    wrapper.module = module
    return wrapper


def test_a_wrapper_that_names_its_segmentor_is_looked_through():
    seg = Segmentor()
    assert unwrap_segmentor(Wrapper(seg)) is seg
    assert unwrap_segmentor(Wrapper(Wrapper(seg))) is seg


def test_runtime_wrappers_and_purpose_wrappers_nest_in_any_order():
    seg = Segmentor()
    model = ddp(TTA(Wrapper(ddp(seg))))
    assert unwrap_segmentor(model) is seg
    # the runtime wrappers only: the purpose wrapper stays
    assert isinstance(unwrap_runtime_wrappers(model), Wrapper)


def test_a_plain_segmentor_is_itself_and_a_non_module_attribute_is_ignored():
    seg = Segmentor()
    assert unwrap_segmentor(seg) is seg
    seg.wrapped_segmentor = 'not a module'  # not the protocol
    assert unwrap_segmentor(seg) is seg


def test_the_ood_segmentor_follows_the_protocol(tmp_path):
    from conftest import STREET_CONFIG
    from mmengine.config import Config

    from mmseg_ood.models import OODSegmentor
    cfg = Config.fromfile(STREET_CONFIG)
    model = OODSegmentor(segmentor=cfg.model, scorer='msp', threshold=0.5)
    assert model.wrapped_segmentor is model.segmentor
    assert unwrap_segmentor(ddp(model)) is model.segmentor
    assert unwrap_runtime_wrappers(ddp(model)) is model
