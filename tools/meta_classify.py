"""Meta classification of OOD segments: Table 2, Table 3 and Fig. 7.

The tool lives in the package:
``python -m mmseg_ood.tools.meta_classify --help``.
"""
from mmseg_ood.tools.meta_classify import main

if __name__ == '__main__':
    main()
