"""One table over several ood_test runs.

The tool lives in the package:
``python -m mmseg_ood.tools.analysis.compare_results --help``.
"""
from mmseg_ood.tools.analysis.compare_results import main

if __name__ == '__main__':
    main()
