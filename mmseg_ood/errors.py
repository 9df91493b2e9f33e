"""The errors a user can fix, as one family; the package's notices.

Every check the package makes on what a user hands it (a flag value, a
config field, a file's contents, a missing file or environment variable,
an optional package not installed) raises a :class:`UserError`. The tools
print its message as one line, ``<tool>: error: <message>``, and exit with
status 2 (``mmseg_ood.tools.entry``); anything else is a bug and keeps its
traceback. ``--debug`` shows the traceback of a user error too.

Each class also derives from the built-in exception a caller would catch
for it (``ValueError``, ``FileNotFoundError``, ``ImportError``...), so code
written against the built-in types keeps working.

A message names the thing (the file, field, flag or value) and, where
there is one, what to do.
"""

__all__ = [
    'UserError', 'InvalidValueError', 'InvalidTypeError', 'MissingInputError',
    'MissingFieldError',
    'DamagedFileError', 'OutputPathError', 'WorkDirLockedError',
    'MissingExtraError', 'OODNotice'
]


class UserError(Exception):
    """An error in what the user asked for or handed over; a tool prints
    its message as one line and exits 2."""


class InvalidValueError(UserError, ValueError):
    """A flag, argument or config field has a value the method cannot
    take."""


class InvalidTypeError(UserError, TypeError):
    """A flag, argument or config field has the wrong type."""


class MissingInputError(UserError, FileNotFoundError):
    """A file, folder or environment variable the run needs is not
    there."""


class MissingFieldError(UserError, KeyError):
    """A config, data sample or file lacks a field the method needs."""

    def __str__(self):  # KeyError's str() quotes its message
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class DamagedFileError(UserError, ValueError):
    """A file exists but is not what it should be: truncated, not the
    expected format, another tool's file, a newer schema, or a field of
    the wrong type."""


class OutputPathError(UserError, ValueError):
    """An output path cannot be written safely: it is one of the run's
    inputs, a folder where a file goes (or a file where a folder goes), or
    its folder does not exist."""


class WorkDirLockedError(UserError, RuntimeError):
    """Another run holds the work directory's lock."""


class MissingExtraError(UserError, ImportError):
    """A feature needs an optional package that is not installed; the
    message names the extra to install (``pip install
    'mmseg_ood[onnx]'``)."""


class OODNotice(UserWarning):
    """Something the user should know that does not stop the run (a
    scorer skipped for this head, a metric undefined on this data). Code
    using the package gets it as a Python warning; the tools write it as a
    log line (``mmseg_ood.tools.entry``)."""
