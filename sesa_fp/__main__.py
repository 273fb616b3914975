"""``python -m sesa_fp job.yaml --set ds=2025-09-06``."""

import sys

from sesa_fp.cli import module_main

if __name__ == "__main__":
    module_main(sys.argv[1:])
