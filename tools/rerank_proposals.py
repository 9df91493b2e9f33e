"""mIoU after re-ranking segmentation proposals (SegNet paper, eq. 17).

The tool lives in the package:
``python -m mmseg_ood.tools.rerank_proposals --help``.
"""
from mmseg_ood.tools.rerank_proposals import main

if __name__ == '__main__':
    main()
