"""The API reference (docs/en/api) covers every public class and function,
and every one of them has a docstring that documents its arguments.

Public: a class or function defined at the top level of a module of the
package whose name starts with no underscore, listed in the module's
``__all__`` where it has one. ``mmseg_ood.tools`` is left out: its modules
are command lines, documented option by option on the user-guide pages
(``tests/docs/test_tool_pages.py``). The API pages document each object once,
where it is defined: ``automodule`` of its module (members come in through
the site's ``autodoc_default_options``), or ``autoclass`` /
``autofunction`` of its full name.
"""
import dataclasses
import importlib
import inspect
import os
import os.path as osp
import pkgutil
import re

import pytest

import mmseg_ood
from conftest import REPO

API_DIR = osp.join(REPO, 'docs', 'en', 'api')
#: Packages whose modules the API reference leaves out, with the reason.
NOT_IN_API = {
    'mmseg_ood.tools': 'command lines: one user-guide page per tool',
}


def public_modules():
    """Every real module of the package (stand-ins for old import paths
    are not files, so they are not walked), ``NOT_IN_API`` left out."""
    names = ['mmseg_ood']
    for info in pkgutil.walk_packages(mmseg_ood.__path__, 'mmseg_ood.'):
        if any(part.startswith('_') for part in info.name.split('.')):
            continue
        if info.name.startswith(tuple(NOT_IN_API)):
            continue
        names.append(info.name)
    return sorted(names)


def public_objects():
    """``{'module.Name': object}`` of every public class and function, at
    the module that defines it."""
    found = {}
    for modname in public_modules():
        module = importlib.import_module(modname)
        names = getattr(module, '__all__', None)
        for name, obj in vars(module).items():
            if name.startswith('_') or not (
                    inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if getattr(obj, '__module__', None) != modname:
                continue  # imported: documented where it is defined
            if names is not None and name not in names:
                continue
            found[f'{modname}.{name}'] = obj
    return found


OBJECTS = public_objects()
DIRECTIVE = re.compile(
    r'^\.\. (automodule|autoclass|autofunction|autoexception)::\s*(\S+)',
    re.M)


def api_directives():
    """``[(page, kind, target)]`` of the autodoc directives on the API
    pages."""
    found = []
    assert osp.isdir(API_DIR), f'missing: {API_DIR}'
    for page in sorted(os.listdir(API_DIR)):
        if page.endswith('.md'):
            with open(osp.join(API_DIR, page), encoding='utf-8') as f:
                for kind, target in DIRECTIVE.findall(f.read()):
                    found.append((page, kind, target))
    return found


def test_the_walk_finds_the_package():
    assert len(OBJECTS) > 300
    for key in ('mmseg_ood.scorers.energy.Energy',
                'mmseg_ood.engine.evaluation_session.EvaluationSession',
                'mmseg_ood.errors.UserError'):
        assert key in OBJECTS, key
    assert not any(k.startswith('mmseg_ood.tools.') for k in OBJECTS)


def test_every_public_object_is_on_an_api_page():
    directives = api_directives()
    modules = {t for _, kind, t in directives if kind == 'automodule'}
    objects = {t for _, kind, t in directives if kind != 'automodule'}
    missing = sorted(
        key for key in OBJECTS
        if key.rsplit('.', 1)[0] not in modules and key not in objects)
    assert not missing, (
        'public classes and functions missing from docs/en/api '
        f'({len(missing)}):\n' + '\n'.join(missing))


def test_every_api_directive_names_something_real():
    known_modules = set(public_modules())
    for page, kind, target in api_directives():
        if kind == 'automodule':
            assert target in known_modules, f'api/{page}: {target}'
        else:
            assert target in OBJECTS, f'api/{page}: {target} is not public'


def test_every_module_is_documented_once():
    pages = {}
    for page, kind, target in api_directives():
        if kind == 'automodule':
            assert target not in pages, (
                f'{target} on api/{pages[target]} and api/{page}')
            pages[target] = page


# docstrings ------------------------------------------------------------------
#: An entry of an ``Args:`` / ``Attributes:`` section: ``name:``,
#: ``name (type):``, or several names sharing one text (``a / b:``).
ENTRY = re.compile(r'^    (\*{0,2}\w+(?:\s*[/,]\s*\*{0,2}\w+)*)'
                   r'(?:\s*\([^)]*\))?:(?: |$)')


def documented_names(doc):
    """The names the docstring's ``Args:`` and ``Attributes:`` sections
    document."""
    names = set()
    for m in re.finditer(r'^(?:Args|Arguments|Attributes):\n(.*?)(?=^\S|\Z)',
                         doc, re.S | re.M):
        for line in m.group(1).splitlines():
            entry = ENTRY.match(line)
            if entry:
                names.update(n.strip().lstrip('*')
                             for n in re.split(r'[/,]', entry.group(1)))
    return names


def parameters(obj):
    """The named parameters a caller passes (``self``, ``*args`` and
    ``**kwargs`` left out); a class's are its constructor's (a
    dataclass's: its fields)."""
    if inspect.isclass(obj):
        if dataclasses.is_dataclass(obj):
            return [f.name for f in dataclasses.fields(obj) if f.init]
        init = obj.__dict__.get('__init__')
        if init is None:
            return []  # inherited: documented by the base
        target = init
    else:
        target = obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.name not in ('self', 'cls') and p.kind not in (
                p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_the_entry_parser():
    doc = inspect.cleandoc('''Summary.

        Args:
            alpha: First; goes on
                here: with a colon.
            beta (int): Typed.
            gamma / delta: Two at once.
            **kwargs: Forwarded.

        Returns:
            epsilon: not an argument.
        ''')
    assert documented_names(doc) == {'alpha', 'beta', 'gamma', 'delta',
                                     'kwargs'}

    @dataclasses.dataclass
    class Point:
        x: int
        y: int = 0

    assert parameters(Point) == ['x', 'y']
    assert parameters(lambda a, *b, c=1, **d: None) == ['a', 'c']


@pytest.mark.parametrize('key', sorted(OBJECTS))
def test_public_object_documents_its_arguments(key):
    obj = OBJECTS[key]
    doc = obj.__dict__.get('__doc__') if inspect.isclass(obj) \
        else obj.__doc__
    assert doc and doc.strip(), f'{key} has no docstring'
    doc = inspect.cleandoc(doc)
    if dataclasses.is_dataclass(obj) and doc.startswith(f'{obj.__name__}('):
        pytest.fail(f'{key}: the docstring is the generated signature')
    missing = [p for p in parameters(obj) if p not in documented_names(doc)]
    assert not missing, (
        f'{key}: arguments {missing} are not documented (an Args: section, '
        'or Attributes: for a dataclass, with one "name: text" entry each)')
