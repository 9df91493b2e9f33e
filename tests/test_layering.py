"""Lower layers never import higher ones (DESIGN.md, "How to work")."""
import ast
import os
import os.path as osp

import pytest

PKG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'mmseg_ood')

# each subpackage, and the package modules it must not import
FORBIDDEN = {
    'labels': {'utils', 'scorers', 'evaluation', 'datasets', 'models',
               'engine', 'apis', 'tools', 'synthetic'},
    'utils': {'scorers', 'evaluation', 'datasets', 'models', 'engine',
              'apis', 'tools', 'synthetic'},
    'scorers': {'evaluation', 'datasets', 'models', 'engine', 'apis',
                'tools'},
    'evaluation': {'scorers', 'datasets', 'models', 'engine', 'apis',
                   'tools'},
    'synthetic': {'evaluation', 'models', 'engine', 'apis', 'tools'},
    'datasets': {'evaluation', 'models', 'engine', 'apis', 'tools'},
    'models': {'evaluation', 'datasets', 'engine', 'apis', 'tools'},
    'engine': {'apis', 'tools'},
    'apis': {'tools'},
}


def package_imports(path):
    """The mmseg_ood subpackages a module imports (absolute or relative)."""
    rel = osp.relpath(path, osp.dirname(PKG)).replace(os.sep, '.')[:-3]
    parts = rel.split('.')
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[:len(parts) - node.level]
                mod = '.'.join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ''
            names = [mod] if node.module else [f'{mod}.{a.name}'
                                               for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            p = name.split('.')
            if p[0] == 'mmseg_ood' and len(p) > 1:
                found.add(p[1])
    return found


def modules(sub):
    root = osp.join(PKG, sub)
    if osp.isfile(root + '.py'):
        return [root + '.py']
    return [osp.join(d, f) for d, _, fs in os.walk(root) for f in fs
            if f.endswith('.py')]


@pytest.mark.parametrize('sub', sorted(FORBIDDEN))
def test_no_upward_imports(sub):
    bad = {}
    for path in modules(sub):
        hit = package_imports(path) & FORBIDDEN[sub]
        if hit:
            bad[osp.relpath(path, PKG)] = sorted(hit)
    assert not bad, f'{sub} imports higher layers: {bad}'


def test_the_checker_sees_relative_imports():
    assert 'apis' in package_imports(osp.join(PKG, 'apis', 'ood_test.py'))
    assert 'scorers' in package_imports(osp.join(PKG, 'models',
                                                 'ood_scoring.py'))
