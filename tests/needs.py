"""Test dependencies (the test extra): a test that needs one is skipped on a developer's machine
without it, and fails in CI (CI set, as CI services do; .ci/run sets it), which installs the test
extra: there a skip would hide a test that never ran."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def needs(module: str, reason: str) -> ModuleType:
    """`module`, imported; outside CI a missing one skips the calling test (or module)."""
    if IN_CI:
        return importlib.import_module(module)  # a missing module fails here, as it should in CI
    return pytest.importorskip(module, reason=reason)


def skip_unless_ci(missing: bool, reason: str) -> pytest.MarkDecorator:
    """skipif(missing) outside CI; in CI never skipped, so what is missing fails the test."""
    return pytest.mark.skipif(missing and not IN_CI, reason=reason)
