"""The job server (multiarg.jobserver): a job it forks writes what the job's own process would, passes exit statuses,
streams and signals through, and is refused when it would not run as a fresh process would."""
import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from multiarg import jobserver

TINY_PRETRAIN = ["pretrain", "--activation", "arg2", "--seed", "3", "--inner-hidden", "8", "--steps", "20",
                 "--samples", "500"]


@contextlib.contextmanager
def serving(tmp_path):
    """A server for this test's jobs. Started in the test itself: pytest changes PYTEST_CURRENT_TEST between a
    fixture and the test, and a job whose environment differs from the server's is (rightly) refused."""
    log = tmp_path / "jobserver.log"
    process = jobserver.start(str(log))
    try:
        assert process is not None and os.environ[jobserver.ENV]
        yield log
    finally:
        jobserver.stop(process)
    assert process.returncode is not None and jobserver.ENV not in os.environ


def multiarg(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "multiarg", *args], capture_output=True, text=True,
                          env=env or dict(os.environ), **kwargs)


def forked_pid(stderr: str) -> int:
    return int(re.search(rf"{jobserver.FORKED} (\d+)", stderr).group(1))


def gone(pid: int, timeout: float = 20) -> bool:
    """True once ``pid`` has ended and been reaped (a zombie still answers kill(pid, 0))."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_forked_job_writes_what_its_own_process_writes_and_passes_exit_status_through(tmp_path):
    with serving(tmp_path) as log:
        forked = multiarg(*TINY_PRETRAIN, "--out", str(tmp_path / "forked.pt"))
        assert forked.returncode == 0, forked.stderr
        pid = forked_pid(forked.stderr)
        assert re.search(rf"job process {pid} ended with exit status 0; {re.escape(jobserver.USAGE)} "
                         r"[0-9.]+ MB, CPU [0-9.]+ s", forked.stderr)
        # an argparse error (exit 2, usage on the job's stderr), help on its stdout (exit 0), a job's own failure
        usage = multiarg("pretrain", "--seed", "0")
        assert usage.returncode == 2 and "the following arguments are required" in usage.stderr
        assert jobserver.FORKED in usage.stderr
        shown = multiarg("--help")
        assert shown.returncode == 0 and "usage:" in shown.stdout
        failed = multiarg("pretrain", "--activation", "relu", "--seed", "0", "--out", str(tmp_path / "x.pt"))
        assert failed.returncode == 1 and "relu has no inner net to pretrain" in failed.stderr
        # a job whose environment differs from the server's runs in its own process, and says why
        other = multiarg(*TINY_PRETRAIN, "--out", str(tmp_path / "refused.pt"), env={**os.environ, "EXTRA": "1"})
        assert other.returncode == 0, other.stderr
        assert ("running in this process, not forked by the job server: environment variables differ from the "
                "server's: EXTRA") in other.stderr and jobserver.FORKED not in other.stderr
    server_log = log.read_text()
    assert re.search(rf"jobserver {pid}: job pretrain --activation arg2", server_log)
    assert "refused" in server_log and "stopped" in server_log
    fresh = multiarg(*TINY_PRETRAIN, "--out", str(tmp_path / "fresh.pt"),
                     env={k: v for k, v in os.environ.items() if k != jobserver.ENV})
    assert fresh.returncode == 0 and "job server" not in fresh.stderr
    a, b, c = (torch.load(tmp_path / f"{name}.pt", weights_only=False) for name in ("fresh", "forked", "refused"))
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]) and torch.equal(value, c["state_dict"][key]), key


WAITING_CLIENT = """
import json, os, socket, sys, time
from multiarg import jobserver
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect(os.environ[jobserver.ENV])
request = json.dumps({"argv": ["multiarg", *sys.argv[1:]], "cwd": os.getcwd(), "env": dict(os.environ),
                      "prefix": sys.prefix, "version": sys.version, "path": sys.path}).encode()
socket.send_fds(conn, [jobserver.HEADER.pack(len(request))], [0, 1, 2])
conn.sendall(request)
replies = conn.makefile("rb")
assert "pid" in json.loads(replies.readline()), "refused"
time.sleep(1.0)  # a job that did not wait for the word to begin would have logged by now
print("client: the job may begin", file=sys.stderr, flush=True)
conn.sendall(b"\\n")
print(json.loads(replies.readline())["exit"])
"""


def test_a_forked_job_begins_only_once_its_client_has_said_so(tmp_path):
    """Client and job share the log: the job waits for the client's word, so the log's first line is the client's
    (the workflow's logs begin "forked by the job server"), however slowly the client is scheduled."""
    with serving(tmp_path):
        with open(tmp_path / "stderr", "w") as err:
            client = subprocess.run([sys.executable, "-c", WAITING_CLIENT, *TINY_PRETRAIN, "--out",
                                     str(tmp_path / "waited.pt")], stderr=err, stdout=subprocess.PIPE, text=True,
                                    env=dict(os.environ), timeout=120)
    assert client.returncode == 0 and client.stdout.strip() == "0", (tmp_path / "stderr").read_text()
    assert (tmp_path / "stderr").read_text().startswith("client: the job may begin\n")
    assert (tmp_path / "waited.pt").exists()


def test_signals_reach_a_forked_job_and_a_killed_client_takes_its_job_along(tmp_path):
    long_job = [*TINY_PRETRAIN[:-4], "--steps", "1000000", "--samples", "500", "--out", str(tmp_path / "never.pt")]
    with serving(tmp_path) as log:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with open(tmp_path / "stderr", "w+") as err:
                client = subprocess.Popen([sys.executable, "-m", "multiarg", *long_job], stderr=err,
                                          stdout=subprocess.DEVNULL, env=dict(os.environ))
                try:
                    deadline = time.time() + 60
                    while jobserver.FORKED not in (tmp_path / "stderr").read_text():
                        assert time.time() < deadline and client.poll() is None, (tmp_path / "stderr").read_text()
                        time.sleep(0.05)
                    pid = forked_pid((tmp_path / "stderr").read_text())
                    time.sleep(0.5)  # into its training loop
                    client.send_signal(sig)
                    assert client.wait(30) == -sig  # the client dies of the signal, as the job's own process would
                    assert gone(pid), f"forked job {pid} outlived its client ({sig!r})"
                finally:
                    client.kill()  # a job that ran in the client itself must not outlive a failed test
        assert not (tmp_path / "never.pt").exists()
    assert re.search(r"ended with wait status (9|15)\b", log.read_text())


def test_no_server_or_a_server_that_is_gone_means_the_job_runs_in_its_own_process(tmp_path):
    env = {**os.environ, jobserver.ENV: str(tmp_path / "no-socket")}
    result = multiarg(*TINY_PRETRAIN, "--out", str(tmp_path / "alone.pt"), env=env)
    assert result.returncode == 0 and "no job server answers at" in result.stderr
    assert (tmp_path / "alone.pt").exists()
    # a server whose parent (the Snakemake process) ends stops by itself and removes its socket
    parent = subprocess.Popen(["sleep", "3"])
    address = tmp_path / "socket"
    server = subprocess.Popen([sys.executable, "-m", "multiarg.jobserver", str(address), str(parent.pid)],
                              stderr=subprocess.PIPE, text=True)
    parent.wait()
    _, log = server.communicate(timeout=120)
    assert server.returncode == 0 and "stopped" in log and not address.exists()


def test_a_job_is_refused_unless_it_would_run_as_a_fresh_process_would():
    state = {"env": {"HOME": "/root", "PATH": "/bin"}, "sources": jobserver._sources(), "prefix": sys.prefix,
             "version": sys.version, "path": sys.path[1:]}
    request = {"env": {**state["env"], "OMP_NUM_THREADS": "2", "TMPDIR": "/tmp/job"}, "prefix": sys.prefix,
               "version": sys.version, "path": ["/cwd", *sys.path[1:]]}
    assert jobserver._refusal(request, state) is None  # Snakemake's per-job variables are the job's to set
    assert "another interpreter" in jobserver._refusal({**request, "prefix": "/other/venv"}, state)
    assert "another sys.path" in jobserver._refusal({**request, "path": ["/cwd", "/extra", *sys.path[1:]]}, state)
    changed = {**request, "env": {**request["env"], "PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "1"}}
    assert jobserver._refusal(changed, state).endswith("differ from the server's: CUDA_VISIBLE_DEVICES, PATH")
    edited = {**state, "sources": {**state["sources"], next(iter(state["sources"])): 0}}
    assert "sources changed" in jobserver._refusal(request, edited)


@pytest.mark.parametrize("code, expected", [(None, 0), (0, 0), (3, 3), (256 + 7, 7), ("message", 1)])
def test_exit_codes_are_mapped_as_the_interpreter_maps_them(code, expected):
    assert jobserver._exit_code(code) == expected


def test_a_server_for_compiling_jobs_preloads_inductor_without_a_thread_a_fork_would_lose():
    count = "len(os.listdir('/proc/self/task'))"
    code = ("import os, sys\nfrom multiarg import jobserver\njobserver.preload()\n"
            f"before, had = {count}, 'torch._inductor.compile_fx' in sys.modules\n"
            "jobserver.preload(inductor=True)\n"
            f"print(had, 'torch._inductor.compile_fx' in sys.modules, before, {count})")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # as the server sets it before it imports
    had, has, before, after = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                             check=True).stdout.split()
    assert (had, has) == ("False", "True") and before == after
