"""A test dependency that is missing skips a test on a developer's machine and fails it in CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBE = '''
from tests.needs import needs, skip_unless_ci

def test_needs_a_missing_module():
    needs("no_such_module_for_this_test", reason="not installed")

@skip_unless_ci(True, reason="a tool that is not there")
def test_needs_a_missing_tool():
    pass
'''


def _run(tmp_path: Path, ci: str | None) -> str:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(probe)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def test_a_missing_test_dependency_skips_locally_and_fails_in_ci(tmp_path):
    assert "2 skipped" in _run(tmp_path, None) and "failed" not in _run(tmp_path, "false")
    ci = _run(tmp_path, "true")
    assert "1 failed" in ci and "1 passed" in ci, ci  # the import fails; the tool test runs (and here passes)
