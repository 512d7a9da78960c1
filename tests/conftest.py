import os

import pytest

import pyconv


def pytest_sessionstart(session):
    # CI sets PYCONV_REQUIRE_OPENMP=1: a serial build must not pass silently there.
    if os.environ.get("PYCONV_REQUIRE_OPENMP") == "1" and not pyconv.openmp_enabled():
        raise pytest.UsageError("PYCONV_REQUIRE_OPENMP=1 but pyconv was built without OpenMP")
