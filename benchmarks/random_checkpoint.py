"""A checkpoint of a config's model with random weights, for benchmarks
(speed does not depend on the weights; no trained model is needed)."""
import os.path as osp


def random_checkpoint(cfg, out_dir: str, meta=None, seed: int = 0) -> str:
    """Build ``cfg.model`` (a loaded mmengine ``Config``), initialise it
    with ``seed`` and save ``<out_dir>/random.pth``; return its path."""
    import torch
    from mmengine.registry import init_default_scope

    import mmseg_ood  # noqa: F401  (registers the package's types)
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = osp.join(out_dir, 'random.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=meta or {}), path)
    return path
