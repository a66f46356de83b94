"""Local Gradio demo of VIG and VIC, as the original's `vigc_demo.py`: the same as `vigc demo`.

    python vigc_demo.py --device0 cpu
    python vigc_demo.py --device0 0 --device1 1

Kept so that the original's command lines keep working; the command is `vigc.cli.demo`.
"""

import sys

from vigc.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
