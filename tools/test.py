"""Test (and evaluate) a checkpoint as mmseg's ``tools/test.py`` does.

The tool lives in the package:
``python -m mmseg_ood.tools.test --help``.
"""
from mmseg_ood.tools.test import main

if __name__ == '__main__':
    main()
