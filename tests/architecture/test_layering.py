"""Lower layers never import higher ones, at module level
(docs/en/architecture.md): the static import graph of every module of
``mmseg_ood`` (root modules and ``mmseg_ood.tools`` included, function-level
imports included) has no cycle, no upward import and no private name taken
from another module."""
import ast
import glob
import os.path as osp

import pytest
from import_graph import (cycles, imports, layer_of, private_imports,
                          read_package, upward_imports)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PKG = 'mmseg_ood'

#: The documented layer order, bottom first. A module may import its own
#: group and the groups of lower layers; groups of one layer are
#: independent of each other. The top package's ``__init__`` imports the
#: packages that register into mmseg's registries.
LAYERS = [
    ['mmseg_ood.version', 'mmseg_ood.labels', 'mmseg_ood.deprecation',
     'mmseg_ood.implicit_background', 'mmseg_ood.errors'],
    ['mmseg_ood.utils'],
    ['mmseg_ood.scorers', 'mmseg_ood.synthetic'],
    ['mmseg_ood.evaluation.functional'],
    ['mmseg_ood.evaluation.accumulators'],
    ['mmseg_ood.formats', 'mmseg_ood.meta'],
    ['mmseg_ood.reports'],
    ['mmseg_ood.models', 'mmseg_ood.evaluation.metrics'],
    ['mmseg_ood.evaluation', 'mmseg_ood.datasets'],
    ['mmseg_ood.engine', 'mmseg_ood.deploy'],
    ['mmseg_ood.apis'],
    ['mmseg_ood.tools'],
    ['mmseg_ood'],
]

#: The most modules a package may hold directly (its subpackages aside).
MAX_MODULES = 15


@pytest.fixture(scope='module')
def graph():
    sources = read_package(REPO, PKG)
    return sources, imports(sources, PKG)


def test_every_module_is_in_a_layer(graph):
    sources, _ = graph
    for module in sources:
        layer_of(module, LAYERS)  # raises KeyError naming it


def test_no_import_cycle(graph):
    _, found = graph
    assert cycles((i.source, i.target) for i in found) == []


def test_no_upward_import(graph):
    _, found = graph
    assert upward_imports(found, LAYERS) == []


def test_no_private_name_imported_across_modules(graph):
    _, found = graph
    assert private_imports(found) == []


def test_no_package_holds_more_than_15_modules():
    sizes = {}
    for init in glob.glob(osp.join(REPO, PKG, '**', '__init__.py'),
                          recursive=True):
        d = osp.dirname(init)
        sizes[osp.relpath(d, REPO)] = len([
            f for f in glob.glob(osp.join(d, '*.py'))
            if osp.basename(f) != '__init__.py'])
    assert sizes and max(sizes.values()) <= MAX_MODULES, sizes


def test_repo_tools_only_call_the_package_tools():
    """``tools/*.py`` parse no arguments themselves: each imports its
    ``mmseg_ood.tools`` module and nothing else of the package."""
    paths = sorted(glob.glob(osp.join(REPO, 'tools', '*.py')))
    assert paths
    for path in paths:
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            mods = ([node.module or ''] if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import) else [])
            for mod in mods:
                if mod.startswith(PKG):
                    assert mod.startswith('mmseg_ood.tools'), (path, mod)


def test_the_architecture_page_lists_the_layers():
    with open(osp.join(REPO, 'docs', 'en', 'architecture.md')) as f:
        page = f.read()
    for groups in LAYERS:
        for g in groups:
            assert f'`{g}`' in page, g


# the checks can fail: a made-up package with each kind of defect

FAKE_LAYERS = [['fake.low'], ['fake.mid_a', 'fake.mid_b'], ['fake.high'],
               ['fake']]


def fake(**modules):
    """``fake.<name>`` modules from sources (``pkg__init`` for a
    package's ``__init__``)."""
    sources = {'fake': ('', True)}
    for name, src in modules.items():
        is_pkg = name.endswith('__init')
        dotted = 'fake.' + name.replace('__init', '').rstrip('_').replace(
            '__', '.')
        sources[dotted] = (src, is_pkg)
    return sources


def test_the_checker_finds_a_cycle_through_function_level_imports():
    src = fake(low='from . import mid_a\n',
               mid_a='def f():\n    from .low import x\n')
    found = imports(src, 'fake')
    assert cycles((i.source, i.target) for i in found) == [
        ['fake.low', 'fake.mid_a']]


def test_the_checker_finds_upward_and_sideways_imports():
    src = fake(low='from .high import y\n', mid_a='from .mid_b import z\n',
               mid_b='', high='from .low import w\n')
    bad = upward_imports(imports(src, 'fake'), FAKE_LAYERS)
    assert len(bad) == 2
    assert 'fake.low:1 imports fake.high' in bad[0]
    assert 'fake.mid_a:1 imports fake.mid_b' in bad[1]


def test_the_checker_resolves_relative_imports_in_packages():
    src = fake(high__init='from ..low import a\nfrom . import sub\n',
               high__sub='from ..low import _b\n', low='')
    found = imports(src, 'fake')
    assert {(i.source, i.target, i.name) for i in found} == {
        ('fake.high', 'fake.low', 'a'), ('fake.high', 'fake.high.sub', ''),
        ('fake.high.sub', 'fake.low', '_b')}
    assert private_imports(found) == [
        'fake.high.sub:1 imports _b from fake.low']
