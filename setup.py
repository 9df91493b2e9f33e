"""Setuptools shim; the metadata lives in setup.cfg.

The build also copies the repository's ``configs/`` into the package as
``mmseg_ood/.mim/configs`` (where mmseg ships its own model-zoo configs), so
that a wheel carries the model configs and OOD dataset presets the tools
resolve (``mmseg_ood::<path>``, ``--datasets synthetic_ood``). A clone or an
editable install reads ``configs/`` directly.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

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


setup(cmdclass={'build_py': BuildPyWithConfigs})
