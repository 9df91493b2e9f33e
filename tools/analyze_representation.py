"""Representation structure of the logits: SCrIBE Fig. 3 and Fig. 4.

The tool lives in the package:
``python -m mmseg_ood.tools.analyze_representation --help``.
"""
from mmseg_ood.tools.analyze_representation import main

if __name__ == '__main__':
    main()
