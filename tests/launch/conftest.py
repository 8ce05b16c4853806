"""A real SLURM cluster of one node, started for the tests: Debian's slurm-wlm (slurmctld, slurmd) and munge, with
a private configuration, state, munge socket and ports under a temporary folder (nothing of /etc is changed).
Skipped, with the reason, where it cannot start (not root, packages missing, daemons that do not come up)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CONF = """\
ClusterName=prunebench
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort={port}
SlurmdPort={port_d}
ReturnToService=2
MpiDefault=none
JobRequeue=1
KillWait=5
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment (SLURM_CONF) under which sbatch, squeue and scontrol talk to the test cluster."""
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld and slurmd needs root")
    for binary in ("munged", "slurmctld", "slurmd", "sbatch"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            pytest.skip(f"{binary} is not installed (Debian packages slurm-wlm and munge)")
    root = tmp_path_factory.mktemp("slurm")
    (root / "munge").mkdir(mode=0o700)
    key = Path("/etc/munge/munge.key")
    (root / "munge" / "key").write_bytes(key.read_bytes() if key.exists() else os.urandom(1024))
    (root / "munge" / "key").chmod(0o600)
    for folder in ("state", "spool"):
        (root / folder).mkdir()
    host = socket.gethostname().split(".")[0]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2
    conf = root / "slurm.conf"
    conf.write_text(
        CONF.format(host=host, root=root, cpus=os.cpu_count(), memory=memory, port=_free_port(), port_d=_free_port())
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    sbin = "/usr/sbin"
    m = root / "munge"
    munged = [f"{sbin}/munged", "--force", f"--socket={m}/socket", f"--key-file={m}/key", f"--log-file={m}/log"]
    started = subprocess.run([*munged, f"--pid-file={m}/pid", f"--seed-file={m}/seed"], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.skip(f"munged does not start: {started.stderr.strip()[:300]}")
    daemons = [(f"{sbin}/slurmctld", root / "slurmctld.pid"), (f"{sbin}/slurmd", root / "slurmd.pid")]
    try:
        for binary, _ in daemons:
            done = subprocess.run([binary], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"{Path(binary).name} does not start: {(done.stderr or done.stdout).strip()[:300]}")
        deadline = time.time() + 60
        state = ""
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            log = (root / "slurmctld.log").read_text()[-500:] if (root / "slurmctld.log").exists() else ""
            pytest.skip(f"the SLURM node did not come up (state {state!r}): {log}")
        yield env
    finally:
        subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True)
        for _, pidfile in [*daemons, (None, m / "pid")]:
            pid = _pid(pidfile)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
