"""Generate QA data with a config, as the original's `evaluate.py` did: the same as `vigc generate`.

    python evaluate.py --cfg-path vigc/projects/default/generate_qa.yaml
    torchrun --nproc_per_node=8 evaluate.py --cfg-path ...

Kept so that the original's command lines keep working; the command is `vigc.cli.generate`.
"""

import sys

from vigc.cli.generate import main

if __name__ == "__main__":
    sys.exit(main())
