"""Optional extras: the core imports and runs without them; a feature
whose extra is missing says which one to install. The missing package is
simulated in this environment by blocking its import (``sys.modules[name]
= None`` makes ``import name`` raise ImportError)."""
import configparser
import os.path as osp
import subprocess
import sys

import pytest

from conftest import QUICK_OPTIONS, REPO, STREET_CONFIG
from mmseg_ood.errors import MissingExtraError
from mmseg_ood.utils.extras import (EXTRAS, check_config_extras,
                                    require_extra)

SETUP_CFG = configparser.ConfigParser()
SETUP_CFG.read(osp.join(REPO, 'setup.cfg'))


def _requirements(section, key):
    return [r.strip() for r in SETUP_CFG[section][key].splitlines()
            if r.strip() and not r.strip().startswith('#')]


def _names(reqs):
    import re
    return {re.split(r'[<>=!\[; ]', r, 1)[0].lower() for r in reqs}


def test_the_core_does_not_require_the_extras():
    core = _names(_requirements('options', 'install_requires'))
    for optional in ('onnx', 'onnxruntime', 'onnxscript', 'mmdet',
                     'mmpretrain', 'pycocotools'):
        assert optional not in core


def test_every_extra_is_declared_and_all_holds_them():
    extras = SETUP_CFG['options.extras_require']
    everything = _names(_requirements('options.extras_require', 'all'))
    for extra in EXTRAS:
        assert extra in extras, extra
        declared = _names(_requirements('options.extras_require', extra))
        assert declared <= everything, extra
    assert everything == set().union(*(
        _names(_requirements('options.extras_require', e)) for e in EXTRAS))


@pytest.mark.parametrize('extra', sorted(EXTRAS))
def test_a_missing_extra_is_named(extra, monkeypatch):
    module = EXTRAS[extra][-1]
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError) as e:
        require_extra(extra, 'this feature')
    msg = str(e.value)
    assert f"pip install 'mmseg_ood[{extra}]'" in msg
    assert module in msg and 'this feature' in msg
    assert isinstance(e.value, ImportError)


def test_a_mask2former_config_without_mmdet_is_named(monkeypatch):
    model = dict(type='EncoderDecoder', decode_head=dict(
        type='Mask2FormerHead', num_classes=19))
    check_config_extras(model)  # installed here: fine
    monkeypatch.setitem(sys.modules, 'mmdet', None)
    with pytest.raises(MissingExtraError, match=r"mmseg_ood\[mask2former\]"):
        check_config_extras(model, 'the model')
    check_config_extras(dict(type='EncoderDecoder',
                             decode_head=dict(type='ASPPHead')))


def _run_blocked(blocked, code):
    """Run ``code`` in a fresh interpreter where ``blocked`` modules cannot
    be imported."""
    prelude = ('import sys\n' + ''.join(f'sys.modules[{m!r}] = None\n'
                                        for m in blocked))
    return subprocess.run([sys.executable, '-c', prelude + code],
                          capture_output=True, text=True, cwd=REPO)


ALL_OPTIONAL = ['onnx', 'onnxruntime', 'onnxscript', 'mmdet', 'mmpretrain',
                'pycocotools']


def test_ood_test_runs_without_any_extra(tmp_path, synthetic_root,
                                        trained_work_dir, monkeypatch):
    """What ``pip install mmseg_ood`` gives: the tool runs on the demo
    model with every optional package blocked."""
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    work = tmp_path / 'eval'
    tool = osp.join(REPO, 'tools', 'ood_test.py')
    argv = [STREET_CONFIG, osp.join(trained_work_dir, 'iter_2.pth'),
            '--work-dir', str(work), '--scorers', 'msp', 'energy',
            '--no-id-eval', '--cfg-options', *QUICK_OPTIONS]
    proc = _run_blocked(ALL_OPTIONAL, (
        f'sys.argv = [{tool!r}] + {argv!r}\n'
        'import runpy\n'
        f'runpy.run_path({tool!r}, run_name="__main__")\n'
        'assert not [m for m in sys.modules if m.split(".")[0] in '
        f'{ALL_OPTIONAL!r} and sys.modules[m] is not None]\n'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / 'results.json').exists()


def test_prepare_coco_ood_without_pycocotools_is_one_line(tmp_path):
    proc = _run_blocked(['pycocotools'], (
        'from mmseg_ood.tools.dataset_converters.prepare_coco_ood import '
        f'main\nmain([{str(tmp_path)!r}, {str(tmp_path / "out")!r}])\n'))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().count('\n') == 0, proc.stderr
    assert "pip install 'mmseg_ood[coco]'" in proc.stderr


def test_export_onnx_without_onnxruntime_is_one_line(tmp_path):
    """Checked before any input is read: the files need not exist."""
    proc = _run_blocked(['onnxruntime'], (
        'from mmseg_ood.tools.export_onnx import main\n'
        f'main([{STREET_CONFIG!r}, "ckpt.pth", "--calibration", "c.json", '
        f'"--out", {str(tmp_path / "m.onnx")!r}])\n'))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().count('\n') == 0, proc.stderr
    assert "pip install 'mmseg_ood[onnx]'" in proc.stderr
    assert 'onnxruntime' in proc.stderr
    assert not list(tmp_path.iterdir())
