"""What every command line shares: one error path, quiet logs.

Each tool builds its parser with :class:`ToolArgumentParser` (which adds
``--debug`` and ``--verbose``) and wraps its ``main`` with
:func:`tool_entry`:

- a :class:`~mmseg_ood.errors.UserError` (a bad flag value, a missing or
  damaged file, a missing environment variable or optional package) or an
  ``OSError`` from the system (a permission, a full disk) prints one line,
  ``<tool>: error: <message>``, and exits with status 2, as argparse does
  for a bad flag; anything else is a bug and keeps its traceback;
  ``--debug`` shows the traceback of every error;
- Ctrl-C prints one line and exits 130;
- warnings of other packages that the user cannot act on (mmengine, torch,
  mmcv deprecations) are hidden; the package's own notices
  (:class:`~mmseg_ood.errors.OODNotice`) are written as log lines;
  ``--verbose`` (or ``--debug``) shows every warning as Python prints it.
"""
import argparse
import functools
import logging
import sys
import warnings
from typing import Callable, Optional, Sequence

from mmseg_ood.errors import OODNotice, UserError

__all__ = ['ToolArgumentParser', 'tool_entry', 'quiet_warnings']

#: Exit status of a user error (argparse's, for a bad flag).
USER_ERROR_STATUS = 2


class ToolArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with the flags every tool has:
    ``--debug`` (tracebacks for every error) and ``--verbose`` (every
    warning)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        group = self.add_argument_group('diagnostics')
        group.add_argument('--debug', action='store_true',
                           help='print the traceback of any error (user '
                           'errors print one line otherwise)')
        group.add_argument('--verbose', action='store_true',
                           help="show other packages' warnings (hidden by "
                           'default)')


def _log_notice(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` of a tool run: the package's notices as
    log lines, other warnings dropped."""
    if issubclass(category, OODNotice):
        import logging

        from mmengine.logging import print_log
        print_log(str(message), logger='current', level=logging.WARNING)


class quiet_warnings:
    """Context manager: inside, other packages' warnings are hidden and the
    package's notices are log lines (``enabled=False`` changes nothing).

    Python warnings of other packages are dropped. Warnings that other
    packages log through mmengine's logger (``print_log(...,
    level=WARNING)``: mmengine's own deprecations, which no warnings filter
    sees) still reach the log file, not the console."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._catch = None
        self._handlers = None

    def __enter__(self):
        if self.enabled:
            self._catch = warnings.catch_warnings()
            self._catch.__enter__()
            warnings.simplefilter('ignore')
            warnings.simplefilter('always', OODNotice)
            warnings.showwarning = _log_notice
            from mmengine.logging import MMLogger
            self._handlers = MMLogger.callHandlers
            original = self._handlers

            def call_handlers(logger, record):
                if record.levelno == logging.WARNING and \
                        not quiet_warnings.logged_by_the_package():
                    for handler in logger.handlers:  # the log file only
                        if isinstance(handler, logging.FileHandler) and \
                                record.levelno >= handler.level:
                            handler.handle(record)
                    return
                original(logger, record)

            MMLogger.callHandlers = call_handlers
        return self

    def __exit__(self, *exc):
        if self._handlers is not None:
            from mmengine.logging import MMLogger
            MMLogger.callHandlers = self._handlers
            self._handlers = None
        if self._catch is not None:
            self._catch.__exit__(*exc)
            self._catch = None

    @staticmethod
    def logged_by_the_package() -> bool:
        """Whether the record being logged comes from ``mmseg_ood``: the
        first caller outside ``logging`` and ``mmengine.logging`` is a
        module of the package."""
        frame = sys._getframe(1)
        while frame is not None:
            name = frame.f_globals.get('__name__', '')
            if name != 'logging' and not name.startswith(
                    ('logging.', 'mmengine.logging')) and \
                    name != __name__:
                return name == 'mmseg_ood' or name.startswith('mmseg_ood.')
            if name == __name__ and frame.f_code.co_name == '_log_notice':
                return True  # a notice (OODNotice)
            frame = frame.f_back
        return False


def _flag(argv: Optional[Sequence[str]], name: str) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return any(a == name for a in argv)


def tool_entry(tool: str) -> Callable:
    """Decorate a tool's ``main(argv=None)`` with the shared error path and
    warning handling (see the module docstring)."""
    def decorate(main):
        @functools.wraps(main)
        def wrapper(argv=None):
            debug = _flag(argv, '--debug')
            verbose = debug or _flag(argv, '--verbose')
            try:
                with quiet_warnings(enabled=not verbose):
                    return main(argv)
            except (UserError, OSError) as e:
                if debug:
                    raise
                print(f'{tool}: error: {_one_line(e)}', file=sys.stderr)
                raise SystemExit(USER_ERROR_STATUS) from None
            except KeyboardInterrupt:
                if debug:
                    raise
                print(f'{tool}: interrupted', file=sys.stderr)
                raise SystemExit(130) from None
        return wrapper
    return decorate


def _one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (continuation lines joined with
    '; ')."""
    text = str(error)
    if isinstance(error, OSError) and not isinstance(error, UserError) \
            and error.strerror:
        text = error.strerror + (f': {error.filename}'
                                 if error.filename else '')
    if isinstance(error, KeyError) and len(error.args) == 1:
        text = str(error.args[0])
    parts = [p.strip() for p in text.splitlines() if p.strip()]
    return '; '.join(parts) if parts else type(error).__name__
