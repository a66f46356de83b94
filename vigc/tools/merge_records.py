"""``python -m vigc.tools.merge_records RUN_DIR [--llava-export PATH]``: the same as ``vigc merge`` (see
`vigc.cli.merge`), kept for the command lines and scripts that use it.

The work is `vigc.generation.merge.merge`, re-exported here for scripts that import it from this module.
"""

from __future__ import annotations

from vigc.generation.merge import merge

__all__ = ["merge"]

if __name__ == "__main__":  # the command line is the top layer: imported only when run as a program
    import sys

    from vigc.cli.merge import main

    sys.exit(main())
