import contextlib
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
STREET_CONFIG = osp.join(
    REPO, 'configs', 'synthetic',
    'deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py')

# A few Runner iterations on a handful of images, in one CPU process.
QUICK_CFG = {
    'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
    'default_hooks.checkpoint.interval': 2,
    'default_hooks.logger.interval': 1,
    'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0,
    'train_dataloader.persistent_workers': False,
    'val_dataloader.num_workers': 0,
    'val_dataloader.persistent_workers': False,
    'test_dataloader.num_workers': 0,
    'test_dataloader.persistent_workers': False
}
#: The same as ``--cfg-options`` arguments.
QUICK_OPTIONS = [f'{k}={v}' for k, v in QUICK_CFG.items()]


def pytest_addoption(parser):
    parser.addoption('--run-slow', action='store_true', default=False,
                     help='also run the tests marked slow (minutes each, '
                     'e.g. every model-zoo family)')


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.slow`` tests are skipped unless ``--run-slow``."""
    if config.getoption('--run-slow'):
        return
    skip = pytest.mark.skip(reason='slow: run with --run-slow')
    for item in items:
        if 'slow' in item.keywords:
            item.add_marker(skip)


def to_bn(cfg):
    """SyncBN -> BN everywhere in a (nested) config, for one CPU process."""
    from mmseg_ood.utils import sync_bn_to_bn
    sync_bn_to_bn(cfg)


def zoo_config_path(name):
    """Path of a model-zoo config shipped in the mmseg wheel
    (``mmseg::fcn/...`` or ``fcn/...``)."""
    import mmseg
    rel = name.split('::', 1)[-1]
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', rel)
    assert osp.isfile(path), f'model-zoo config missing from the wheel: {path}'
    return path


def zoo_model_config(name, **test_cfg):
    """The model config of a model-zoo config, for small CPU inputs: BN, no
    pretrained weights, and no fixed input size (the Cityscapes configs
    pad every input to 512x1024 otherwise), padding to multiples of 32.
    ``test_cfg`` replaces the model's test settings if given."""
    from mmengine.config import Config
    model = Config.fromfile(zoo_config_path(name)).model
    model.pretrained = None
    if model.backbone.get('init_cfg'):
        model.backbone.init_cfg = None
    model.data_preprocessor.pop('size', None)
    model.data_preprocessor['size_divisor'] = 32
    model.data_preprocessor['test_cfg'] = dict(size_divisor=32)
    if test_cfg:
        model.test_cfg = test_cfg
    to_bn(model)
    return model


#: The environment of a tool run whose floats a test compares with floats
#: computed in the test process (inside :func:`one_thread`): the CPU forward
#: pass is not bit-identical across thread counts (DESIGN.md).
ONE_THREAD_ENV = {'OMP_NUM_THREADS': '1'}


@contextlib.contextmanager
def one_thread():
    """Run torch in this process on one thread (the counterpart of
    :data:`ONE_THREAD_ENV`), restoring the thread count after."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def single_thread():
    """The test body runs torch on one thread (:func:`one_thread`)."""
    with one_thread():
        yield


def run_tool(script, *args, env=None, check=True, nproc=None):
    """Run ``tools/<script>`` in a fresh interpreter (or, with ``nproc``,
    under ``torchrun`` in that many processes); return the result."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    launch = [sys.executable]
    if nproc is not None:
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        launch += ['-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
                   f'--master_port={port}']
        args += ('--launcher', 'pytorch')
    proc = subprocess.run(
        launch + [osp.join(REPO, 'tools', script), *args],
        capture_output=True, text=True, env=full_env, cwd=REPO, timeout=900)
    if check and proc.returncode != 0:
        # under torchrun the first rank to fail prints the cause; the tail
        # is the other ranks' reaction to it, so show both
        first = proc.stderr.find('Traceback')
        cause = proc.stderr[first:first + 6000] if first >= 0 else ''
        raise AssertionError(
            f'{script} failed with {proc.returncode}:\n{proc.stdout[-4000:]}'
            f'\n--- first traceback ---\n{cause}'
            f'\n--- end of stderr ---\n{proc.stderr[-4000:]}')
    return proc


def ood_segmentor_config(tmp_path, calibration):
    """What a user writes: the street config's model nested as the
    ``segmentor`` of an ``OODSegmentor`` with ``calibration``."""
    path = tmp_path / 'ood_config.py'
    path.write_text(
        f'_base_ = [{STREET_CONFIG!r}]\n'
        "model = dict(_delete_=True, type='OODSegmentor',\n"
        '             segmentor={{_base_.model}},\n'
        f'             calibration={calibration!r})\n')
    return str(path)


def score_quantiles(config, ckpt, root, scorer, quantiles):
    """Quantiles of ``scorer`` over the street OOD images of ``root``
    (through the public API)."""
    import glob

    import numpy as np

    from mmseg_ood.apis import init_model, score_image
    model = init_model(config, ckpt)
    maps = [np.asarray(score_image(model, f, scorers=[scorer])[scorer])
            for f in sorted(glob.glob(osp.join(root, 'street', 'ood',
                                               'images', '*.png')))]
    return [float(v) for v in
            np.quantile(np.concatenate([m.ravel() for m in maps]),
                        quantiles)]


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """A tiny copy of both synthetic variants."""
    from mmseg_ood.synthetic import make_synthetic_benchmark
    out = tmp_path_factory.mktemp('synthetic')
    make_synthetic_benchmark(str(out), seed=0, num_train=4, num_val=2,
                             num_ood=3, num_image_ood=1, num_proxy=3)
    return str(out)


@pytest.fixture(scope='session')
def trained_work_dir(tmp_path_factory, synthetic_root):
    """Two Runner iterations through tools/train.py; returns the work dir."""
    work = str(tmp_path_factory.mktemp('train'))
    run_tool('train.py', STREET_CONFIG, '--work-dir', work, '--cfg-options',
             *QUICK_OPTIONS, env={'MMSEG_OOD_DATA': synthetic_root})
    return work


def registered_classes():
    """``{'<REGISTRY>.<name>': class}`` of every class ``mmseg_ood``
    registers: the entries of mmseg's registries whose class is defined in
    ``mmseg_ood``, and every scorer of ``OOD_SCORERS``."""
    import mmseg.registry

    import mmseg_ood  # noqa: F401
    from mmseg_ood.scorers import OOD_SCORERS
    found = {}
    for reg_name, reg in sorted(vars(mmseg.registry).items()):
        if not hasattr(reg, 'module_dict'):
            continue
        for name, cls in reg.module_dict.items():
            if getattr(cls, '__module__', '').startswith('mmseg_ood'):
                found[f'{reg_name}.{name}'] = cls
    for name, cls in OOD_SCORERS.module_dict.items():
        found[f'OOD_SCORERS.{name}'] = cls
    return found


def package_tool(tool: str) -> str:
    """The ``mmseg_ood.tools`` module that ``tools/<tool>.py`` runs."""
    with open(osp.join(REPO, 'tools', f'{tool}.py')) as f:
        found = re.findall(r'^from (mmseg_ood\.tools\.[\w.]+) import main$',
                           f.read(), re.M)
    assert len(found) == 1, f'tools/{tool}.py calls no package tool'
    return found[0]


@pytest.fixture
def isolated_loggers():
    """Forget the mmengine loggers a test creates: they write to the
    test's captured stdout, which is closed after it."""
    from mmengine.logging import MMLogger
    before = set(MMLogger._instance_dict)
    yield
    for name in set(MMLogger._instance_dict) - before:
        MMLogger._instance_dict.pop(name)


#: The street config with a small test resize (fast on CPU): a config
#: file's text.
SMALL_RESIZE_CONFIG = (
    f'_base_ = [{STREET_CONFIG!r}]\n'
    'test_pipeline = [\n'
    "    dict(type='LoadImageFromFile'),\n"
    "    dict(type='Resize', scale=(64, 32), keep_ratio=True),\n"
    "    dict(type='LoadAnnotations'),\n"
    "    dict(type='PackSegInputs')]\n"
    'test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n')


def tensorboard_events(folder):
    """``(scalars, images)`` of the one TensorBoard event file under
    ``folder``, read with TensorBoard's own reader: ``{tag: [(step, value),
    ...]}`` and ``{tag: [(step, width), ...]}``."""
    import glob
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    events = glob.glob(osp.join(str(folder), '**', 'events.out.tfevents*'),
                       recursive=True)
    assert len(events) == 1, events
    acc = EventAccumulator(osp.dirname(events[0]),
                           size_guidance={'scalars': 0, 'images': 0})
    acc.Reload()
    tags = acc.Tags()
    return ({t: [(e.step, e.value) for e in acc.Scalars(t)]
             for t in tags['scalars']},
            {t: [(e.step, e.width) for e in acc.Images(t)]
             for t in tags['images']})
