import os

# Tests assert which algorithm a call takes: they run on the built-in thresholds, not on
# this machine's calibration (tests/test_tuning.py covers the calibration itself).
os.environ.setdefault("PYCONV_TUNING", "off")

import pytest  # noqa: E402

import pyconv  # noqa: E402


def pytest_sessionstart(session):
    # CI sets PYCONV_REQUIRE_OPENMP=1: a serial build must not pass silently there.
    if os.environ.get("PYCONV_REQUIRE_OPENMP") == "1" and not pyconv.openmp_enabled():
        raise pytest.UsageError("PYCONV_REQUIRE_OPENMP=1 but pyconv was built without OpenMP")
