"""Helpers of the tests that fork: a child's answer (or its hang), and a lock held by
another thread across the fork."""
import contextlib
import os
import select
import signal
import threading


def child_says(fn, timeout=20):
    """What ``fn()`` returns in a forked child (as text), or None when it has not answered
    within ``timeout`` seconds (the child is killed)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, str(fn()).encode())
        finally:
            os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], timeout)
    got = os.read(r, 16).decode() if ready else None
    os.close(r)
    if got is None:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return got


@contextlib.contextmanager
def held_by_another_thread(lock, timeout=30):
    """A block during which another thread holds ``lock`` (released after the block)."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with lock:
            held.set()
            release.wait(timeout)
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(timeout)
    try:
        yield
    finally:
        release.set()
        holder.join()
