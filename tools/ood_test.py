"""Score a checkpoint on OOD datasets with every scorer in one pass.

The tool lives in the package:
``python -m mmseg_ood.tools.ood_test --help``.
"""
from mmseg_ood.tools.ood_test import main

if __name__ == '__main__':
    main()
