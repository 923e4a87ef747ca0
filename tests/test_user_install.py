"""A user install (`pip install -e .`, no test extra) runs the command line: nothing on the way to
`selfplay train` imports the test or optional tools. Checked in a fresh process in which importing
any of them fails, as it would where they are not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a fresh interpreter importing Ray and torch: seconds

REPO = Path(__file__).resolve().parent.parent
NOT_IN_A_USER_INSTALL = ("selenium", "moto", "s3fs", "fsspec", "onnx", "onnxruntime", "mpe2", "matplotlib", "pytest", "boto3")

SCRIPT = f"""
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_IN_A_USER_INSTALL!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, NotInstalled())
import cluster.run.cli as cli
import cluster.run.trainer, cluster.remote.submit  # what `train` and `submit` import when they run
for argv in (["train", "--help"], ["config", "show", "configs/tictactoe_smoke.yaml"]):
    try:
        rc = cli.main(argv)
    except SystemExit as exc:
        rc = exc.code
    assert rc == 0, (argv, rc)
print("OK")
"""


def test_the_cli_runs_without_the_test_and_optional_extras():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.rstrip().endswith("OK")
    assert "usage: selfplay train" in done.stdout
