"""Robustness to corrupted input: several models, every corruption.

The tool lives in the package:
``python -m mmseg_ood.tools.robustness_test --help``.
"""
from mmseg_ood.tools.robustness_test import main

if __name__ == '__main__':
    main()
