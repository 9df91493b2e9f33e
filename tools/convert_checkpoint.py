"""Convert a checkpoint between a plain decode head and IBE / SCrIBE.

The tool lives in the package:
``python -m mmseg_ood.tools.convert_checkpoint --help``.
"""
from mmseg_ood.tools.convert_checkpoint import main

if __name__ == '__main__':
    main()
