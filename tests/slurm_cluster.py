"""A real one-node Slurm cluster on localhost for the cluster-script tests.

munged, slurmctld and slurmd run as the current (root) user with every file
(key, sockets, state, logs) under one folder and on free ports, so the test
neither reads nor changes the machine's own /etc/slurm or /etc/munge, and two
clusters can run side by side. Processes are tracked by proctrack/linuxproc and
tasks are not confined (task/none): cgroups are not required."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "scontrol", "squeue", "srun", "scancel", "sinfo")


def missing_binaries():
    """Slurm and munge programs that are not installed (daemons live in sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [name for name in DAEMONS + CLIENTS if shutil.which(name, path=path) is None]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


class SlurmCluster:
    """slurmctld + slurmd on this host; ``env`` points clients at it (SLURM_CONF)."""

    def __init__(self, root):
        self.root = Path(root)
        self.host = socket.gethostname().split(".")[0]
        self.cpus = os.cpu_count()
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge.socket"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.env["PATH"] = os.pathsep.join([self.env.get("PATH", ""), "/usr/sbin", "/sbin"])
        self.processes = []

    def _write_conf(self):
        (self.root / "state").mkdir()
        (self.root / "spool").mkdir()
        r = self.root
        self.conf.write_text(f"""\
ClusterName=fairseqot
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket},cred_expire=5
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/slurmctld.log
SlurmdLogFile={r}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=2
MinJobAge=3600
InactiveLimit=0
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN
PartitionName=local Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")

    def _start(self, *command):
        log = open(self.root / f"{Path(command[0]).name}.out", "w")
        process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def start(self, timeout=60):
        self._write_conf()
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._start(
            "munged", "--foreground", "--force", f"--key-file={key}",
            f"--socket={self.munge_socket}", f"--pid-file={self.root}/munged.pid",
            f"--log-file={self.root}/munged.log", f"--seed-file={self.root}/munge.seed",
        )
        _wait_for(self.munge_socket.exists, timeout, "munged's socket")
        self._start("slurmctld", "-D", "-c", "-f", str(self.conf))
        self._start("slurmd", "-D", "-f", str(self.conf))
        _wait_for(self._node_idle, timeout, f"node {self.host} to be idle (logs in {self.root})")

    def _node_idle(self):
        for process in self.processes:
            if process.poll() is not None:
                log = self.root / f"{process.args[0]}.out"
                raise RuntimeError(f"{process.args[0]} exited:\n{log.read_text()[-2000:]}")
        result = self.run("sinfo", "--noheader", "--format=%t", check=False)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def run(self, *command, check=True):
        """A Slurm client command against this cluster."""
        result = subprocess.run(
            [str(c) for c in command], env=self.env, capture_output=True, text=True
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{command[0]} failed ({result.returncode}): {result.stderr}")
        return result

    def sbatch(self, *args, env=None):
        """Submit a batch job; returns its id."""
        result = subprocess.run(
            ["sbatch", "--parsable", *map(str, args)],
            env={**self.env, **(env or {})}, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise AssertionError(f"sbatch failed: {result.stderr}")
        return result.stdout.strip().split(";")[0]

    def job(self, job_id):
        """``scontrol show job`` as a dict of its KEY=VALUE fields."""
        words = self.run("scontrol", "--oneliner", "show", "job", job_id).stdout.split()
        return dict(word.split("=", 1) for word in words if "=" in word)

    def wait_job(self, job_id, timeout):
        """Wait for a job to end; returns its final scontrol fields."""
        final = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
        _wait_for(lambda: self.job(job_id)["JobState"] in final, timeout, f"job {job_id} to end")
        return self.job(job_id)

    def stop(self):
        # Job steps outlive slurmd (slurmstepd detaches): cancel them first.
        if self.run("squeue", "--noheader", "--format=%i", check=False).stdout.strip():
            self.run("scancel", "--full", "--user", str(os.getuid()), check=False)
            try:
                _wait_for(lambda: not self.run("squeue", "--noheader", check=False).stdout.strip(),
                          30, "cancelled jobs to end")
            except TimeoutError:
                pass  # the daemons stop anyway; the test has failed already
        for process in reversed(self.processes):
            process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
