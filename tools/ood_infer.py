"""Segment images and videos, marking calibrated OOD pixels "unknown".

The tool lives in the package:
``python -m mmseg_ood.tools.ood_infer --help``.
"""
from mmseg_ood.tools.ood_infer import main

if __name__ == '__main__':
    main()
