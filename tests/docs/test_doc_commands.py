"""Every shell command of the documentation runs, on tiny data.

Each page's ```bash blocks run, in order, as one bash script
(``set -euo pipefail``) in a fresh sandbox directory laid out like a user's
checkout after ``make demo``:

- ``configs/``, ``scripts/``, ``benchmarks/``: the repository's;
- ``tools/<tool>.py``: the repository's tools, each run with the small
  overrides of :data:`EXTRA_ARGS` (``train.py`` trains 2 iterations, every
  dataloader has 0 workers); ``python -m mmseg_ood.tools.<tool>`` goes the
  same way;
- ``data/synthetic``: a tiny synthetic benchmark (both variants), with
  ``MMSEG_OOD_DATA=data/synthetic``;
- ``work_dirs/demo/iter_300.pth`` and ``work_dirs/demo/last_checkpoint``:
  the street model of ``make demo``, trained for 2 iterations.

After a training run, its final checkpoint is also found under the name
the config's own schedule gives (``iter_300.pth``), so that a page's later
commands read what a user's would. The commands listed in
``tests/docs/not_run.py`` are left out, each with its reason.

The tool runs go through a fork server (``doc_command_server.py``) that
has torch, mmseg and the package imported once: each run is a fresh
process forked from it, with the command's arguments, directory,
environment and standard streams, so a run costs its work, not the
imports.
"""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

from conftest import QUICK_OPTIONS, REPO, package_tool
from doc_pages import DOCS, doc_pages, fenced_blocks
from not_run import NOT_RUN

DEMO_CONFIG = ('configs/synthetic/'
               'deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py')
#: Dataloaders in the tool's own process: no worker start-up per command.
LOADER_OPTIONS = [
    f'{split}_dataloader.{key}'
    for split in ('train', 'val', 'test')
    for key in ('num_workers=0', 'persistent_workers=False')]
#: Tool -> arguments appended to each documented run of it (a later
#: ``--cfg-options`` merges into an earlier one).
EXTRA_ARGS = {'train': ['--cfg-options', *QUICK_OPTIONS]}
for _tool in ('test', 'ood_test', 'calibrate_ood', 'meta_classify',
              'robustness_test', 'analyze_representation', 'rerank_proposals'):
    EXTRA_ARGS[_tool] = ['--cfg-options', *LOADER_OPTIONS]


HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")


def split_commands(text, first_line=1):
    """``(line, command)`` of each command of a bash block: backslash
    continuations joined, a here-document kept with its command, blank and
    comment-only lines left out."""
    commands, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        start = i
        if not line.strip() or line.lstrip().startswith('#'):
            i += 1
            continue
        parts = [line]
        while parts[-1].rstrip().endswith('\\') and i + 1 < len(lines):
            i += 1
            parts.append(lines[i])
        m = HEREDOC.search(parts[-1])
        if m:
            while i + 1 < len(lines):
                i += 1
                parts.append(lines[i])
                if lines[i].strip() == m.group(1):
                    break
            else:
                raise AssertionError(
                    f'line {first_line + start}: unterminated here-document')
        commands.append((first_line + 1 + start, '\n'.join(parts)))
        i += 1
    return commands


def page_commands(page):
    """``(line, command, reason)`` of every command of the page's ```bash
    blocks; ``reason`` is why it is not run, or ``None``."""
    skip = NOT_RUN.get(page, {})
    found = []
    for line, text in fenced_blocks(osp.join(DOCS, page), 'bash'):
        for n, command in split_commands(text, line):
            reasons = [r for s, r in skip.items() if s in command]
            found.append((n, command, reasons[0] if reasons else None))
    return found


PAGES_WITH_COMMANDS = [p for p in doc_pages() if page_commands(p)]


def test_the_command_splitter():
    text = textwrap.dedent('''\
        # a comment
        python tools/a.py x \\
            --flag y   # trailing comment

        cat > f.py <<'EOF'
        x = 1
        EOF
        make demo
        ''')
    assert split_commands(text, 10) == [
        (12, 'python tools/a.py x \\\n    --flag y   # trailing comment'),
        (15, "cat > f.py <<'EOF'\nx = 1\nEOF"),
        (18, 'make demo')]


def test_the_docs_have_commands_and_run_most_of_them():
    every = [c for p in doc_pages() for c in page_commands(p)]
    run = [c for c in every if c[2] is None]
    assert len(every) >= 30, f'only {len(every)} commands in docs/en'
    assert len(run) >= 20, f'only {len(run)} of {len(every)} commands run'


def test_every_not_run_entry_matches_a_command_and_says_why():
    pages = set(doc_pages())
    for page, entries in NOT_RUN.items():
        assert page in pages, f'not_run.py: no page docs/en/{page}'
        commands = [c for _, c, _ in page_commands(page)]
        for substring, reason in entries.items():
            assert reason and len(reason) > 10, (
                f'not_run.py: {page}: {substring!r} needs a reason')
            assert any(substring in c for c in commands), (
                f'not_run.py: {page}: {substring!r} matches no command')


# the sandbox ----------------------------------------------------------------
WRAPPER = '''\
"""tools/{tool}.py in the docs sandbox: the real tool with small overrides
(tests/docs/test_doc_commands.py)."""
import sys

sys.path.insert(0, {tests!r})
from doc_sandbox_tool import run  # noqa: E402

run({tool!r}, {module!r}, sys.argv[1:], {extra!r})
'''

PYTHON_SHIM = '''\
#!/usr/bin/env bash
# `python` in the docs sandbox: a tool run (`python tools/X.py`, or
# `python -m mmseg_ood.tools.X` through the sandbox's wrapper of that tool)
# goes to the fork server (doc_command_server.py), which has everything
# imported already; anything else is the test's Python.
if [[ ${{1:-}} == -m && ${{2:-}} == mmseg_ood.tools.* ]]; then
    module=$2; shift 2
    set -- "{root}/.modules/$module.py" "$@"
fi
if [[ ${{1:-}} == tools/*.py || ${{1:-}} == {root}/.modules/*.py ]]; then
    exec {python!r} -S {client!r} run {socket!r} "$@"
fi
exec {python!r} "$@"
'''


def tool_modules():
    """``{tool: package module}`` of every ``tools/*.py``."""
    return {f[:-3]: package_tool(f[:-3])
            for f in sorted(os.listdir(osp.join(REPO, 'tools')))
            if f.endswith('.py')}


def make_sandbox(root, synthetic_root, trained_work_dir, server):
    """Lay out ``root`` as described in the module docstring; its tool runs
    go to the fork server listening on ``server``."""
    for name in ('configs', 'scripts', 'benchmarks'):
        os.symlink(osp.join(REPO, name), osp.join(root, name))
    os.makedirs(osp.join(root, 'data'))
    os.symlink(synthetic_root, osp.join(root, 'data', 'synthetic'))
    demo = osp.join(root, 'work_dirs', 'demo')
    os.makedirs(demo)
    with open(osp.join(trained_work_dir, 'last_checkpoint')) as f:
        shutil.copy(f.read().strip(), osp.join(demo, 'iter_300.pth'))
    with open(osp.join(demo, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(demo, 'iter_300.pth'))
    tests = osp.dirname(osp.abspath(__file__))
    for sub in ('tools', '.modules', '.bin'):
        os.makedirs(osp.join(root, sub))
    for tool, module in tool_modules().items():
        text = WRAPPER.format(tool=tool, module=module, tests=tests,
                              extra=EXTRA_ARGS.get(tool, []))
        for path in (osp.join(root, 'tools', f'{tool}.py'),
                     osp.join(root, '.modules', f'{module}.py')):
            with open(path, 'w') as f:
                f.write(text)
    shim = osp.join(root, '.bin', 'python')
    with open(shim, 'w') as f:
        f.write(PYTHON_SHIM.format(python=sys.executable, root=root,
                                   client=SERVER_SCRIPT, socket=server))
    os.chmod(shim, 0o755)
    os.symlink(shim, osp.join(root, '.bin', 'python3'))


SERVER_SCRIPT = osp.join(osp.dirname(osp.abspath(__file__)),
                         'doc_command_server.py')


@pytest.fixture(scope='module')
def command_server():
    """The fork server's socket (doc_command_server.py), for the module's
    tests; stopped after them."""
    from doc_command_server import request
    folder = tempfile.mkdtemp(prefix='docs-server-')
    path = osp.join(folder, 'socket')
    env = dict(os.environ, MPLBACKEND='Agg', PYTHONWARNINGS='ignore')
    server = subprocess.Popen([sys.executable, SERVER_SCRIPT, 'serve', path],
                              stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert server.stdout.readline().strip() == 'ready', \
            'the docs command server did not start'
        yield path
    finally:
        if server.poll() is None:
            try:
                request(path, dict(stop=True))
                server.wait(timeout=30)
            except Exception:
                server.kill()
        shutil.rmtree(folder, ignore_errors=True)


MARK = '@@docs-command '


def page_script(page):
    """The page's runnable commands as one bash script; each announces
    itself on stderr with its line."""
    lines = ['set -euo pipefail']
    for n, command, reason in page_commands(page):
        if reason is None:
            lines.append(f"echo '{MARK}{n}' >&2")
            lines.append(command)
    return '\n'.join(lines) + '\n'


@pytest.mark.parametrize('page', PAGES_WITH_COMMANDS)
def test_page_commands_run(page, tmp_path, synthetic_root, trained_work_dir,
                           command_server):
    if all(reason for _, _, reason in page_commands(page)):
        pytest.skip(f'docs/en/{page}: every command is on the not-run list')
    root = str(tmp_path / 'sandbox')
    os.makedirs(root)
    make_sandbox(root, synthetic_root, trained_work_dir, command_server)
    env = dict(os.environ)
    env.update(MMSEG_OOD_DATA='data/synthetic', MPLBACKEND='Agg',
               PATH=osp.join(root, '.bin') + os.pathsep + env['PATH'],
               PYTHONWARNINGS='ignore')
    proc = subprocess.run(['bash', '-c', page_script(page)], cwd=root,
                          env=env, capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        marks = re.findall(rf'^{MARK}(\d+)$', proc.stderr, re.M)
        line = marks[-1] if marks else '?'
        command = next((c for n, c, _ in page_commands(page)
                        if str(n) == line), '?')
        pytest.fail(
            f'docs/en/{page} line {line}: exit {proc.returncode}\n'
            f'$ {command}\n--- stdout ---\n{proc.stdout[-3000:]}\n'
            f'--- stderr ---\n{proc.stderr[-5000:]}')
