"""Unknown arguments fail at construction, naming the argument and the
accepted ones, wherever a config reaches: metrics, hooks, losses, heads,
the TTA model and scorers."""
import pytest

import mmseg_ood  # noqa: F401
from mmseg.registry import HOOKS, METRICS, MODELS
from mmseg_ood.scorers import OOD_SCORERS, build_scorer


def ours(registry):
    return sorted(n for n, c in registry.module_dict.items()
                  if getattr(c, '__module__', '').startswith('mmseg_ood'))


STRICT = [(r, n) for r in (METRICS, HOOKS, MODELS) for n in ours(r)]


@pytest.mark.parametrize('registry,name', STRICT,
                         ids=[n for _, n in STRICT])
def test_every_registered_class_rejects_unknown_arguments(registry, name):
    cls = registry.get(name)  # an alias (CalibrationMetric) names its class
    with pytest.raises(TypeError,
                       match=f"{cls.__name__}: unknown argument "
                       "'no_such_arg'; accepted: "):
        cls(no_such_arg=1)


@pytest.mark.parametrize('name', sorted(OOD_SCORERS.module_dict))
def test_every_scorer_rejects_unknown_arguments(name):
    with pytest.raises(TypeError,
                       match=f"scorer '{name}': unknown argument "
                       "'no_such_arg'; accepted: "):
        build_scorer(dict(type=name, no_such_arg=1))


def test_typos_name_the_intended_argument():
    from mmseg_ood.evaluation import (ECEMetric, OODMetric,
                                      OpenSetIoUMetric)
    with pytest.raises(TypeError, match=r"'component_treshold' \(did you "
                       r"mean 'component_threshold'.*'bitz' \(did you "
                       r"mean 'bits'\?\)"):
        OODMetric(component_treshold=None, bitz=8)
    with pytest.raises(TypeError, match="'num_bin' .*'num_bins'"):
        ECEMetric(num_bin=10)
    with pytest.raises(TypeError, match="'threshold' .*'thresholds'"):
        OpenSetIoUMetric(threshold=[0.5])
    with pytest.raises(TypeError, match="'etaa' .*'eta'"):
        build_scorer(dict(type='n_energy', etaa=1.5))
    with pytest.raises(TypeError, match="accepted: none"):
        build_scorer(dict(type='msp', temperature=2.0))


def test_through_the_registry_too():
    """What a config does: mmengine's build keeps the message."""
    with pytest.raises(TypeError, match="'bitz' .*'bits'"):
        METRICS.build(dict(type='OODMetric', bitz=8))
    with pytest.raises(TypeError, match="'backgound_index' .*"
                       "'background_index'"):
        MODELS.build(dict(type='IBEHead', backgound_index=0,
                          head=dict(type='FCNHead', in_channels=8,
                                    channels=4, num_classes=3)))


def test_bad_values_fail_at_construction():
    from mmseg_ood.evaluation import OODMetric
    with pytest.raises(ValueError, match='loss_name.*loss_'):
        MODELS.build(dict(type='UOILoss', loss_name='uoi'))
    with pytest.raises(ValueError, match='loss_name.*loss_'):
        MODELS.build(dict(type='EntropyMaximizationLoss', loss_name='em'))
    assert MODELS.build(dict(type='IoULoss',
                             loss_name='loss_iou2')).loss_name == 'loss_iou2'
    with pytest.raises(ValueError, match="unknown scorer 'msq'.*msp"):
        HOOKS.build(dict(type='OODScoringHook', scorers=['msq']))
    with pytest.raises(ValueError, match='component_threshold.*best_f1'):
        OODMetric(component_threshold='best-f1')
    with pytest.raises(ValueError, match='component_threshold'):
        OODMetric(component_threshold={'msp': 'oracle'})
    with pytest.raises(TypeError, match='scorers'):
        OODMetric(scorers='msp')
    with pytest.raises(ValueError, match='dataset_name'):
        HOOKS.build(dict(type='SMIYCExportHook', out_dir='x',
                         dataset_name=''))
