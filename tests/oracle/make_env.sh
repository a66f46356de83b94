#!/usr/bin/env bash
# The test oracle: transformers 4.33.3 (the version the original VIGC ran on) in a virtual environment of its own,
# beside torch 2.13 CPU and sentencepiece. The differential tests (tests/oracle/) run our decoding and tokenizers
# against it. Built once and reused: a finished environment holds the file `.complete`.
#
#   bash tests/oracle/make_env.sh          # prints the environment's python
#
# VIGC_ORACLE_VENV chooses where it lives (default: ~/.cache/vigc/oracle-transformers-4.33.3).
set -euo pipefail
venv="${VIGC_ORACLE_VENV:-$HOME/.cache/vigc/oracle-transformers-4.33.3}"
if [ ! -f "$venv/.complete" ]; then
    echo "Building the transformers 4.33.3 test oracle in $venv (once; about a minute)" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        torch==2.13.0 transformers==4.33.3 tokenizers==0.13.3 sentencepiece >&2
    "$venv/bin/python" -c "import transformers, torch; assert transformers.__version__ == '4.33.3'"
    touch "$venv/.complete"
fi
echo "$venv/bin/python"
