"""New processes without an interpreter start: forked from a server that has imported torch and
mu_core and computed nothing.

Starting ``python -m mu_core`` costs about 5 s here (torch, then ``torch._dynamo``, which an
optimiser imports on first use); the kill-and-resume tests start a dozen runs, the trust tests
seventeen jobs per mode. A process forked from the server is as new as one started from the shell
for what these tests check: it has run nothing, and a SIGKILL ends it at once.
"""
import contextlib
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["fresh", "one_job", "mu_core.study", "mu_core.__main__", "torch._dynamo"])


def _cli(argv: list, out: str | None) -> None:
    """A child's whole life: ``python -m mu_core ARGV``, its output to the file ``out``."""
    from mu_core.__main__ import main
    with open(out or os.devnull, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        code = main(argv)
    sys.exit(code)


def start_cli(argv: list, out: str | None = None):
    """A new process running ``python -m mu_core`` with ``argv`` (``multiprocessing.Process``:
    ``kill()`` sends SIGKILL, ``exitcode`` is the command's exit status)."""
    p = _CTX.Process(target=_cli, args=(list(argv), out))
    p.start()
    return p


def run_cli(argv: list, out: str | None = None) -> None:
    """Run ``python -m mu_core`` with ``argv`` in a new process; fail unless it exits 0."""
    p = start_cli(argv, out)
    p.join()
    if p.exitcode != 0:
        raise RuntimeError(f"python -m mu_core {' '.join(argv)} exited {p.exitcode}"
                           + (f": {open(out).read()[-2000:]}" if out and os.path.exists(out) else ""))


def pool(workers: int = 2) -> ProcessPoolExecutor:
    """Workers whose every task runs first in a new process."""
    return ProcessPoolExecutor(workers, mp_context=_CTX, max_tasks_per_child=1)
