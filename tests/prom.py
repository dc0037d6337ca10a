"""Where the tests find Prometheus' own tools (`promtool`, `prometheus`: Debian's package
`prometheus`). Absent, a test that needs one is skipped with the reason; under CI=true (where
.ci/run installs the package) absent is a failure, so CI cannot pass without having run them."""

from __future__ import annotations

import os
import shutil

import pytest

PACKAGE_HINT = "install Debian's package `prometheus` (apt-get install --no-install-recommends prometheus)"


def binary(name: str) -> str:
    """The path of `name` on PATH; skip the test (fail it under CI=true) when there is none."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: {PACKAGE_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)
    return path
