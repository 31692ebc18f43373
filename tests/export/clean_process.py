"""Runs a script in a fresh Python process outside the source tree, as a
serving host loads an export."""

import json
import os
import subprocess
import sys


def run_in_clean_process(script: str) -> dict:
    """Runs `script` with `python -c` from "/" with an empty PYTHONPATH and
    returns the JSON object it prints on its last line of standard output."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment,
        cwd="/", timeout=300, check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])
