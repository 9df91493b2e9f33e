"""Old import paths keep working for a minor release, each use warning with
the new path (mmseg_ood.deprecation); registered type names never change."""
import importlib
import importlib.machinery
import inspect
import subprocess
import sys
import warnings

import pytest

import mmseg_ood  # noqa: F401  (installs the old paths)
from mmseg_ood.deprecation import MOVED_MODULES, RENAMED_NAMES, REMOVED_IN


def public_names(module):
    """Names a module defines (not those it imports), public."""
    names = getattr(module, '__all__', None)
    if names is None:
        names = [n for n, v in vars(module).items()
                 if not n.startswith('_') and not inspect.ismodule(v)
                 and getattr(v, '__module__', module.__name__) ==
                 module.__name__]
    return names


@pytest.mark.parametrize('old', sorted(MOVED_MODULES))
def test_a_moved_module_serves_every_name_of_its_new_modules(old):
    parent, _, leaf = old.rpartition('.')
    # the old path is no file any more: the table does not shadow a module
    assert importlib.machinery.PathFinder.find_spec(
        old, importlib.import_module(parent).__path__) is None
    module = importlib.import_module(old)
    checked = 0
    for new_name in MOVED_MODULES[old]:
        new = importlib.import_module(new_name)
        for name in public_names(new):
            if any(name in vars(importlib.import_module(m))
                   for m in MOVED_MODULES[old][:MOVED_MODULES[old].index(
                       new_name)]):
                continue  # an earlier new module serves it
            with pytest.warns(DeprecationWarning) as record:
                value = getattr(module, name)
            assert value is getattr(new, name)
            message = str(record[0].message)
            assert f'{old}.{name} is deprecated' in message
            assert f'use {new_name}.{name}' in message
            assert f'removed in mmseg_ood {REMOVED_IN}' in message
            assert record[0].filename == __file__  # points at the caller
            checked += 1
    assert checked, f'{old}: its new modules define nothing public'
    with pytest.raises(AttributeError, match='moved to'):
        module.no_such_name


@pytest.mark.parametrize('old, name', sorted(RENAMED_NAMES))
def test_a_renamed_name_is_its_new_name(old, name):
    module_name, _, new_name = RENAMED_NAMES[(old, name)].partition(':')
    new = getattr(importlib.import_module(module_name), new_name)
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning,
                      match=f'use {module_name}.{new_name}') as record:
        assert getattr(module, name) is new
    assert record[0].filename == __file__
    assert not hasattr(new, '__deprecated__')


def test_from_import_of_an_old_name_warns_at_the_import():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        from mmseg_ood.evaluation.streaming import \
            StreamingOODMetric  # noqa: F401
    from mmseg_ood.evaluation import PixelOODAccumulator
    assert StreamingOODMetric is PixelOODAccumulator
    [w] = [w for w in record if w.category is DeprecationWarning]
    assert w.filename == __file__
    assert 'mmseg_ood.evaluation.accumulators.pixel.PixelOODAccumulator' \
        in str(w.message)


def test_a_current_path_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecationWarning)
        from mmseg_ood.evaluation import ECEMetric, PixelOODAccumulator
        from mmseg_ood.meta import MetaClassifier  # noqa: F401
        assert PixelOODAccumulator and ECEMetric


def test_an_unknown_package_name_is_an_attribute_error():
    import mmseg_ood.evaluation as evaluation
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        evaluation.nope


def test_an_old_tool_path_still_runs_with_python_m():
    proc = subprocess.run(
        [sys.executable, '-W', 'always::DeprecationWarning', '-m',
         'mmseg_ood.tools.compare_results', '--help'],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'usage:' in proc.stdout
    assert 'use mmseg_ood.tools.analysis.compare_results' in proc.stderr


def test_registered_names_of_before_still_build():
    from mmseg.registry import METRICS

    from mmseg_ood.evaluation import ECEMetric
    old = METRICS.build(dict(type='CalibrationMetric', num_bins=10))
    new = METRICS.build(dict(type='ECEMetric', num_bins=10))
    assert type(old) is type(new) is ECEMetric
