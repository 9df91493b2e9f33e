"""The package's version (``setup.cfg`` reads it from here)."""

#: The release, ``MAJOR.MINOR.PATCH``; results files record it.
__version__ = '0.2.0'
