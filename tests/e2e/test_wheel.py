"""The package works after ``pip install`` of its wheel: configs and presets
ship inside it, and the tools run from outside the checkout."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STREET = ('synthetic/'
          'deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """The wheel, built without network and installed with ``--no-deps``
    into a directory of its own; returns (site dir, wheel path)."""
    tmp = tmp_path_factory.mktemp('wheel')
    # a copy of the sources: no stale files
    src = tmp / 'src'
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc', '.mim')
    src.mkdir()
    for name in ('setup.py', 'setup.cfg', 'MANIFEST.in', 'README.md'):
        shutil.copy(osp.join(REPO, name), src / name)
    for name in ('mmseg_ood', 'configs'):
        shutil.copytree(osp.join(REPO, name), src / name, ignore=ignore)
    before = sorted(os.listdir(src))
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
    build = subprocess.run(
        pip + ['wheel', '--no-deps', '--no-build-isolation', '--no-index',
               '-w', str(tmp / 'dist'), str(src)],
        capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    # `pip wheel .` leaves the source tree as it was: no build/, no
    # mmseg_ood.egg-info (setup.py builds outside the tree)
    assert sorted(os.listdir(src)) == before
    wheel = next((tmp / 'dist').glob('mmseg_ood-*.whl'))
    site = tmp / 'site'
    inst = subprocess.run(
        pip + ['install', '--no-deps', '--no-index', '--target', str(site),
               str(wheel)], capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, inst.stdout[-3000:] + inst.stderr[-3000:]
    return site, wheel


def run_outside(site, tmp_path, *args):
    """Python in an empty directory, with the installed wheel first on the
    path (before the checkout's editable install)."""
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop('MMSEG_OOD_DATA', None)  # the presets' default roots
    return subprocess.run([sys.executable, *args], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path, env=env)


def test_wheel_holds_configs_and_presets(installed):
    _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert f'mmseg_ood/.mim/configs/{STREET}' in names
    assert 'mmseg_ood/.mim/configs/_base_/datasets/ood/synthetic_ood.py' \
        in names
    assert 'mmseg_ood/tools/ood_test.py' in names


def test_tools_and_configs_work_from_the_installed_package(
        installed, tmp_path):
    site, _ = installed
    code = '\n'.join([
        # what `python -m mmseg_ood.tools.ood_test --help` runs (one
        # interpreter for all checks: each start costs seconds of imports)
        'import runpy, sys',
        "sys.argv = ['ood_test', '--help']",
        'try:',
        "    runpy.run_module('mmseg_ood.tools.ood_test', "
        "run_name='__main__')",
        'except SystemExit as e:',
        '    assert e.code == 0, e.code',
        "print('--- help done')",
        'import os.path as osp, mmseg_ood',
        'from mmseg_ood.apis import load_dataset_preset',
        'from mmseg_ood.utils import config_root, load_config',
        f'site = {str(site)!r}',
        'assert mmseg_ood.__file__.startswith(site), mmseg_ood.__file__',
        'assert config_root().startswith(site), config_root()',
        "p = load_dataset_preset('synthetic_ood')",
        "print(p.dataset['type'], p.dataset['data_root'], "
        'p.component_preset)',
        f"cfg = load_config('mmseg_ood::{STREET}')",
        'print(cfg.model.decode_head.num_classes, '
        'cfg.train_dataloader.dataset.type)',
    ])
    proc = run_outside(site, tmp_path, '-c', code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    usage, checks = proc.stdout.split('--- help done\n')
    assert '--datasets' in usage and 'synthetic_ood' in usage
    lines = checks.split('\n')
    assert lines[0] == ('SyntheticOODDataset data/synthetic/street/ood '
                        'obstacle_track')
    assert lines[1] == '6 SyntheticStreetDataset'
