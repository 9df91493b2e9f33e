"""Train a segmentor: mmseg's ``tools/train.py`` with mmseg_ood loaded.

The tool lives in the package:
``python -m mmseg_ood.tools.train --help``.
"""
from mmseg_ood.tools.train import main

if __name__ == '__main__':
    main()
