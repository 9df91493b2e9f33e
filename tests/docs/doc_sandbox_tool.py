"""A documented tool run in the docs sandbox (tests/docs/test_doc_commands.py):
the package tool with the test's small overrides appended, and after a
training run its final checkpoint linked under the name the config's own
schedule gives."""
import importlib
import os
import os.path as osp


def _option_values(argv, flag):
    """The values following ``flag`` (up to the next ``--option``)."""
    values, taking = [], False
    for arg in argv:
        if arg == flag:
            taking = True
        elif arg.startswith('--'):
            taking = False
        elif taking:
            values.append(arg)
    return values


def _schedule_checkpoint(argv):
    """``(work_dir, name)``: where tools/train.py wrote (mmseg's priority:
    ``--work-dir``, the config's ``work_dir``, ``work_dirs/<config>``) and
    the checkpoint name the config's own schedule gives
    (``iter_300.pth``)."""
    from mmengine.config import DictAction

    from mmseg_ood.utils import load_config
    options = {}
    for value in _option_values(argv, '--cfg-options'):
        key, val = value.split('=', 1)
        options[key] = DictAction._parse_iterable(val)
    work_dir = (_option_values(argv, '--work-dir') or [None])[0]
    cfg = load_config(argv[0], cfg_options=options or None,
                      work_dir=work_dir)
    train_cfg = cfg.get('train_cfg') or {}
    if train_cfg.get('by_epoch') or train_cfg.get('type') == \
            'EpochBasedTrainLoop':
        return cfg.work_dir, f"epoch_{train_cfg['max_epochs']}.pth"
    return cfg.work_dir, f"iter_{train_cfg['max_iters']}.pth"


def run(tool, module, argv, extra):
    """Run ``module.main(argv + extra)``; after ``train``, link the
    schedule's checkpoint name to the final checkpoint."""
    main = importlib.import_module(module).main
    main(list(argv) + list(extra))
    if tool != 'train':
        return
    work_dir, name = _schedule_checkpoint(argv)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        last = f.read().strip()
    target = osp.join(work_dir, name)
    if not osp.exists(target):
        os.symlink(osp.abspath(last), target)
