"""Train a VIGC model from a config, as the original's `train.py` did: the same as `vigc train`.

    python train.py --cfg-path CONFIG [--options key=value ...] [--resume RUN_OR_CHECKPOINT]
    torchrun --nproc_per_node=8 train.py --cfg-path ...

Kept so that the original's command lines keep working; the command is `vigc.cli.train`.
"""

import sys

from vigc.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
