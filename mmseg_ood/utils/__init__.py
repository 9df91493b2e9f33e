"""Utilities shared by the tools: safe checkpoint loading, config loading,
argument checks."""
from .arguments import check_arguments, strict_arguments
from .checkpoint import (SAFE_GLOBALS, UnsafeCheckpointError,
                         check_checkpoint_fits, checkpoint_meta,
                         checkpoint_state_dict, file_sha256,
                         load_checkpoint_file, safe_checkpoint_loading,
                         state_dict_sha256, with_meta)
from .config import (CONFIG_SCOPE, UnknownTypeError, config_root,
                     explain_unknown_types, load_config, registered_types,
                     resolve_config_path, sync_bn_to_bn)
from .device import check_device

__all__ = [
    'SAFE_GLOBALS', 'UnsafeCheckpointError', 'load_checkpoint_file',
    'safe_checkpoint_loading', 'check_checkpoint_fits',
    'checkpoint_state_dict', 'file_sha256', 'checkpoint_meta',
    'state_dict_sha256', 'with_meta', 'check_device', 'UnknownTypeError',
    'explain_unknown_types',
    'load_config', 'registered_types', 'config_root', 'resolve_config_path',
    'CONFIG_SCOPE', 'check_arguments', 'strict_arguments', 'sync_bn_to_bn'
]
