"""Imported by the fork server alone (never by the runner): the server and every job process it forks ignore
SIGTERM, so that a signal sent to all of a run's processes (SLURM does so when it requeues or preempts a job; so
does `kill -TERM -<group>`) reaches only the runner, which decides: it ends the job in flight without a record,
keeping its checkpoint. A job process ends when the runner kills it (SIGKILL) or dies (PR_SET_PDEATHSIG)."""

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)

import warnings  # noqa: E402

from prunebench import confine  # noqa: E402

if confine.inside():
    confine.server_setup()
    # The server, PID 1 of the sandbox, reaps what a job left behind (killed by the runner) too.
    warnings.filterwarnings("ignore", "forkserver: waitpid returned unexpected pid")
