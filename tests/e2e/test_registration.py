"""Importing mmseg_ood registers into mmseg's registries, nothing else."""
import subprocess
import sys


def test_import_registers_datasets():
    import mmseg_ood  # noqa: F401
    from mmseg.registry import DATASETS
    for name in ('SyntheticStreetDataset', 'SyntheticObjectsDataset',
                 'OutlierProxyDataset', 'OutlierMixDataset'):
        assert DATASETS.get(name) is not None, name


def test_import_registers_heads_and_losses():
    import mmseg_ood  # noqa: F401
    from mmseg.registry import MODELS
    for name in ('IBEHead', 'SCrIBEHead', 'UOILoss', 'IoULoss',
                 'EntropyMaximizationLoss'):
        assert MODELS.get(name) is not None, name


def test_import_has_no_other_side_effect():
    # In a fresh interpreter: the checkpoint loader, torch's safe globals and
    # the default scope are untouched by the import.
    code = '\n'.join([
        'import torch',
        'from mmengine.runner.checkpoint import CheckpointLoader',
        'from mmengine.registry import DefaultScope',
        "before = CheckpointLoader._schemes['']",
        'safe = list(torch.serialization.get_safe_globals())',
        'import mmseg_ood',
        "assert CheckpointLoader._schemes[''] is before",
        'assert list(torch.serialization.get_safe_globals()) == safe',
        'assert DefaultScope.get_current_instance() is None',
        "print('ok')",
    ])
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'
