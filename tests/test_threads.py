import os
import subprocess
import sys

import pytest

import pyconv


def test_openmp_required_in_ci():
    if os.environ.get("PYCONV_REQUIRE_OPENMP") == "1":
        assert pyconv.openmp_enabled() is True
    assert isinstance(pyconv.openmp_enabled(), bool)


def test_set_get_and_context():
    old = pyconv.get_num_threads()
    try:
        pyconv.set_num_threads(1)
        assert pyconv.get_num_threads() == 1
        with pyconv.threads(2):
            assert pyconv.get_num_threads() == min(2, pyconv._utils._openmp.max_threads())
        assert pyconv.get_num_threads() == 1
    finally:
        pyconv.set_num_threads(old)
    assert pyconv.get_num_threads() == old


def test_context_restores_on_error():
    old = pyconv.get_num_threads()
    with pytest.raises(RuntimeError):
        with pyconv.threads(1):
            raise RuntimeError("boom")
    assert pyconv.get_num_threads() == old


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_counts(bad):
    with pytest.raises(ValueError, match="n="):
        pyconv.set_num_threads(bad)
    with pytest.raises(ValueError, match="n="):
        with pyconv.threads(bad):
            pass


@pytest.mark.parametrize("bad", [1.5, "2", None, True])
def test_bad_types(bad):
    with pytest.raises(TypeError, match="n must be an integer"):
        pyconv.set_num_threads(bad)


def test_threadpoolctl_limits():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not pyconv.openmp_enabled():
        pytest.skip("serial build")
    with threadpoolctl.threadpool_limits(1):
        assert pyconv.get_num_threads() == 1
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert pyconv.get_num_threads() == 1


def test_omp_num_threads_env_default():
    code = "import pyconv; print(pyconv.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
