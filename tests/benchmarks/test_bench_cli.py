"""Start-up time of the light commands: `xrbench --help` and `xrbench list tasks|datasets`, each in a
fresh interpreter, as a user types them. Goal: under 1.5 s on the 2-core CPU machine (measured:
0.05 s, 0.2 s and 0.4 s; both lists took 4-8 s when they imported torch). Run with ``make bench``."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("argv", [["--help"], ["list", "tasks"], ["list", "datasets"]], ids=" ".join)
def test_cli_start_up(benchmark, argv):
    def once():
        subprocess.run([sys.executable, "-m", "xrbench.cli", *argv], check=True, capture_output=True)

    benchmark.pedantic(once, rounds=5, iterations=1, warmup_rounds=1)
