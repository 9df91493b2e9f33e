"""The static import graph of a package's modules, read from the AST.

Used by ``test_layering.py``; kept apart so the test can run the same
checks on a small made-up package and show that each check can fail.

Every ``import`` and ``from ... import`` counts, at module level or inside a
function (a function-level import is still a dependency, only a later one).
``from pkg import name`` is an edge to ``pkg.name`` when that is a module,
else to ``pkg``.
"""
import ast
import os
import os.path as osp
from typing import Dict, Iterable, List, NamedTuple, Sequence, Set, Tuple


class Import(NamedTuple):
    source: str  # the importing module
    target: str  # the imported module
    name: str  # the name taken from it ('' for a module import)
    line: int


def module_name(path: str, root: str) -> Tuple[str, bool]:
    """``(dotted name, is_package)`` of the file ``path`` under ``root``
    (the directory that holds the top package)."""
    rel = osp.relpath(path, root)[:-3].replace(os.sep, '.')
    if rel.endswith('.__init__'):
        return rel[:-len('.__init__')], True
    return rel, False


def read_package(root: str, package: str) -> Dict[str, Tuple[str, bool]]:
    """Module name -> ``(source, is_package)`` of every module of
    ``package`` under ``root``."""
    sources = {}
    for d, _, files in os.walk(osp.join(root, package)):
        for f in files:
            if f.endswith('.py'):
                path = osp.join(d, f)
                name, is_pkg = module_name(path, root)
                with open(path) as fh:
                    sources[name] = (fh.read(), is_pkg)
    return sources


def imports(sources: Dict[str, Tuple[str, bool]],
            package: str) -> List[Import]:
    """Every import of a module of ``package`` by a module of ``sources``."""
    found = []
    for module, (source, is_pkg) in sources.items():
        here = module.split('.') if is_pkg else module.split('.')[:-1]
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - node.level + 1]
                    target = '.'.join(base +
                                      ([node.module] if node.module else []))
                else:
                    target = node.module or ''
                for alias in node.names:
                    sub = f'{target}.{alias.name}'
                    if sub in sources:
                        found.append(Import(module, sub, '', node.lineno))
                    else:
                        found.append(Import(module, target, alias.name,
                                            node.lineno))
            elif isinstance(node, ast.Import):
                found += [Import(module, a.name, '', node.lineno)
                          for a in node.names]
    return [i for i in found
            if i.target == package or i.target.startswith(package + '.')]


def cycles(edges: Iterable[Tuple[str, str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (and
    modules that import themselves), by Tarjan's algorithm."""
    graph: Dict[str, Set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        # iterative: the graph is deep enough for Python's recursion limit
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1 or node in graph[node]:
                        out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer_of(module: str, layers: Sequence[Sequence[str]]) -> Tuple[int, str]:
    """``(layer index, group)`` of ``module``: the longest group prefix that
    names it (a group is a dotted module or package name)."""
    best = None
    for i, groups in enumerate(layers):
        for g in groups:
            if module == g or module.startswith(g + '.'):
                if best is None or len(g) > len(best[1]):
                    best = (i, g)
    if best is None:
        raise KeyError(f'{module} is in no layer')
    return best


def upward_imports(found: Iterable[Import],
                   layers: Sequence[Sequence[str]]) -> List[str]:
    """Imports of a module of a higher layer, or of another group of the
    same layer (groups of one layer are independent)."""
    bad = []
    for i in found:
        (la, ga), (lb, gb) = layer_of(i.source, layers), layer_of(i.target,
                                                                  layers)
        if lb > la or (lb == la and ga != gb):
            bad.append(f'{i.source}:{i.line} imports {i.target} '
                       f'({gb}, layer {lb}) from {ga} (layer {la})')
    return bad


def private_imports(found: Iterable[Import]) -> List[str]:
    """Private names (``_x``, not dunders) imported from another module."""
    return [f'{i.source}:{i.line} imports {i.name} from {i.target}'
            for i in found if i.name.startswith('_')
            and not i.name.startswith('__') and i.source != i.target]
