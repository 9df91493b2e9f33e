"""Setuptools shim; the metadata lives in setup.cfg.

The build also copies the repository's ``configs/`` into the package as
``mmseg_ood/.mim/configs`` (where mmseg ships its own model-zoo configs), so
that a wheel carries the model configs and OOD dataset presets the tools
resolve (``mmseg_ood::<path>``, ``--datasets synthetic_ood``). A clone or an
editable install reads ``configs/`` directly.
"""
import hashlib
import os
import shutil
import sys
import tempfile

from setuptools import setup
from setuptools.command.build import build
from setuptools.command.build_py import build_py
from setuptools.command.egg_info import egg_info

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithConfigs(build_py):
    """``build_py`` that adds ``configs/`` as ``mmseg_ood/.mim/configs``."""

    def run(self):
        super().run()
        src = os.path.join(HERE, 'configs')
        dst = os.path.join(self.build_lib, 'mmseg_ood', '.mim', 'configs')
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
            '__pycache__', '*.pyc'))


def _scratch(name: str) -> str:
    """A build folder outside the source tree (one per checkout), so that
    ``pip wheel .`` / ``pip install .`` leave the tree as it was."""
    tag = hashlib.sha1(HERE.encode()).hexdigest()[:10]
    return os.path.join(tempfile.gettempdir(), f'mmseg_ood-{name}-{tag}')


class BuildOutsideTree(build):
    """``build`` with its default ``build_base`` outside the source tree
    (``--build-base`` still chooses another)."""

    def initialize_options(self):
        super().initialize_options()
        self.build_base = _scratch('build')


class EggInfoOutsideTree(egg_info):
    """``egg_info`` writing ``mmseg_ood.egg-info`` outside the source tree
    for wheels; an editable install (``pip install -e``) keeps it in the
    tree, where it must be."""

    def initialize_options(self):
        super().initialize_options()
        if not any(a in ('develop', 'editable_wheel') for a in sys.argv):
            base = _scratch('egg-info')
            os.makedirs(base, exist_ok=True)
            self.egg_base = base


setup(cmdclass={'build': BuildOutsideTree, 'build_py': BuildPyWithConfigs,
                'egg_info': EggInfoOutsideTree})
