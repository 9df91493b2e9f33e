"""Utilities shared by the tools: safe checkpoint loading, config loading."""
from .checkpoint import (SAFE_GLOBALS, UnsafeCheckpointError,
                         load_checkpoint_file, safe_checkpoint_loading)
from .config import (UnknownTypeError, explain_unknown_types, load_config,
                     registered_types)

__all__ = [
    'SAFE_GLOBALS', 'UnsafeCheckpointError', 'load_checkpoint_file',
    'safe_checkpoint_loading', 'UnknownTypeError', 'explain_unknown_types',
    'load_config', 'registered_types'
]
