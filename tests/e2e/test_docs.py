"""Docs drift: every registered class documents its arguments, and no
user-facing text points at the tracker's issue numbers."""
import inspect
import os
import os.path as osp
import re

import pytest

from conftest import registered_classes

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = registered_classes()
NEED_REFERENCES = {
    key for key in CLASSES
    if key.startswith(('METRICS.', 'OOD_SCORERS.')) or (
        key.startswith('MODELS.') and key.endswith(('Loss', 'Head')))
} | {'DATASETS.OutlierMixDataset'}

#: Classes whose Args are not checked, each with the reason. Empty: every
#: registered class is checked.
EXEMPT = {}

#: An Args entry: ``name:``, several names sharing one text
#: (``collect_device / prefix:``), or ``*args:`` / ``**kwargs:``.
ENTRY = re.compile(r'^    (\*{0,2}\w+(?: / \w+)*):(?: |$)')


def args_section(doc):
    """The lines of the docstring's ``Args:`` section (``None`` if it has
    none): up to the next line that is not indented."""
    m = re.search(r'^Args:\n(.*?)(?=^\S|\Z)', doc, re.S | re.M)
    return m.group(1) if m else None


def documented_args(doc):
    """The argument names the ``Args:`` section documents, ``*args`` and
    ``**kwargs`` left out. Every line indented by exactly four spaces must
    be an entry, so that an unparsed format (``name (int):``) fails
    instead of passing unseen."""
    section = args_section(doc)
    names = []
    for line in (section or '').splitlines():
        if not line.strip() or line.startswith('     '):
            continue  # blank, or continuation of the entry above
        m = ENTRY.match(line)
        assert m, f'unparsed line in Args: {line!r}'
        if not m.group(1).startswith('*'):
            names += m.group(1).split(' / ')
    return names


def constructor_parameters(cls):
    """The named parameters of ``cls``'s constructor (``self``, ``*args``
    and ``**kwargs`` left out), through ``strict_arguments`` wrappers."""
    return [
        p.name for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != 'self' and p.kind not in (p.VAR_POSITIONAL,
                                               p.VAR_KEYWORD)
    ]


def test_the_registries_hold_what_the_package_registers():
    # the discovery itself: every kind of registered class is found, so an
    # empty parametrization cannot pass the check below
    kinds = {key.split('.')[0] for key in CLASSES}
    assert kinds == {'DATASETS', 'HOOKS', 'METRICS', 'MODELS', 'TRANSFORMS',
                     'OOD_SCORERS'}
    assert len(CLASSES) >= 50
    for key in ('DATASETS.OODFolderDataset', 'MODELS.IBEHead',
                'HOOKS.RankZeroLoggerHook', 'METRICS.OODMetric',
                'TRANSFORMS.LoadOODAnnotations', 'OOD_SCORERS.sml'):
        assert key in CLASSES, key
    assert set(EXEMPT) <= set(CLASSES), set(EXEMPT) - set(CLASSES)


def test_the_args_parser_on_a_hand_written_docstring():
    doc = inspect.cleandoc('''Summary.

        Args:
            alpha: First; a long text that
                goes on here: with a colon.
            beta / gamma: Two at once.
            **kwargs: Forwarded.

        Returns:
            delta: not an argument.
        ''')
    assert documented_args(doc) == ['alpha', 'beta', 'gamma']
    assert documented_args('Summary only.') == []
    with pytest.raises(AssertionError, match='unparsed line'):
        documented_args('S.\n\nArgs:\n    alpha (int): Typed.\n')


@pytest.mark.parametrize('key', sorted(CLASSES))
def test_documented_args_match_signature(key):
    if key in EXEMPT:
        pytest.skip(EXEMPT[key])
    cls = CLASSES[key]
    doc = cls.__dict__.get('__doc__')
    assert doc, f'{key} has no docstring of its own'
    doc = inspect.cleandoc(doc)
    own = constructor_parameters(cls)
    documented = documented_args(doc)
    if own:
        assert args_section(doc) is not None, (
            f'{key} takes {own} but its docstring has no Args section')
    missing = [p for p in own if p not in documented]
    assert not missing, f'{key}: arguments {missing} are not in Args'
    stale = [d for d in documented if d not in own]
    assert not stale, f'{key}: Args documents {stale}, not arguments'
    assert len(documented) == len(set(documented)), (
        f'{key}: an argument is documented twice: {documented}')


@pytest.mark.parametrize('key', sorted(NEED_REFERENCES))
def test_references_section(key):
    assert 'References:' in inspect.getdoc(CLASSES[key]), key


#: A reference to a tracker issue by number ("issue 12", "Issue #3").
ISSUE_NUMBER = re.compile(r'\bissue\s*#?\d+', re.I)
USER_FACING = ('mmseg_ood', 'tools', 'configs', 'docs', 'README.md',
               'scripts', 'benchmarks')


def user_facing_files():
    missing = [top for top in USER_FACING
               if not osp.exists(osp.join(REPO, top))]
    assert not missing, f'not found: {missing}'
    for top in USER_FACING:
        path = osp.join(REPO, top)
        if osp.isfile(path):
            yield path
        for root, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            for f in files:
                yield osp.join(root, f)


def test_the_issue_pattern():
    for text in ('see issue 12', 'Issue #3', 'ISSUE#40', 'issue  7'):
        assert ISSUE_NUMBER.search(text), text
    for text in ('tissue 3', 'issues 4', 'an issue with #3', 'issue-5'):
        assert not ISSUE_NUMBER.search(text), text


def test_no_user_facing_text_names_an_issue_number():
    hits, read = [], 0
    for path in user_facing_files():
        with open(path, 'rb') as f:
            raw = f.read()
        if b'\0' in raw:
            continue  # an image or another binary file
        try:
            text = raw.decode('utf-8')
        except UnicodeDecodeError:
            continue
        read += 1
        for n, line in enumerate(text.splitlines(), 1):
            if ISSUE_NUMBER.search(line):
                hits.append(f'{osp.relpath(path, REPO)}:{n}: {line.strip()}')
    assert read > 100, f'only {read} text files found under {USER_FACING}'
    assert not hits, 'user-facing text names issue numbers:\n' + '\n'.join(
        hits)
