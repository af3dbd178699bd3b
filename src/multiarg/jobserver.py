"""A job server for the workflow: one process imports PyTorch, NumPy, SciPy, Matplotlib and every multiarg module
once, then forks each ``python -m multiarg`` job from itself, so a job starts in a few tenths of a second instead of
seconds (bench/fork_start.py).

A job is forked only when it would run as it does in a fresh process: the same interpreter, ``sys.path`` and
environment (up to the thread and temporary-directory variables Snakemake sets per job, which the job applies
itself) and unchanged multiarg sources. Otherwise, or when no server answers, it runs in its own process as before
and says why in its log. The Snakefile starts a server when ``job_server: true`` and Snakemake runs jobs locally::

    python -m multiarg.jobserver SOCKET PARENT_PID [inductor]  # serves until PARENT_PID is gone or SIGTERM
"""
from __future__ import annotations

import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import time

ENV = "MULTIARG_JOB_SERVER"
# Snakemake's shell sets these per job (snakemake/shell.py) and a shell sets the last four itself.
PER_JOB = frozenset({"OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "TMPDIR", "TMP", "TEMP", "TEMPDIR",
                     "PWD", "OLDPWD", "SHLVL", "_"})
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
HEADER = struct.Struct("!I")
USAGE = "peak RSS (with the server's pages it shares)"
# What a forked job's log says first. Not a substring of the refusal's "not forked by the job server: ...".
FORKED = "forked by the job server as process"


# ---- the client: python -m multiarg ------------------------------------------------------------------------------
def submit(address: str, argv: list[str]) -> int | None:
    """Run ``argv`` (``sys.argv`` of ``python -m multiarg``) forked by the server at ``address``; its exit code, or
    None when nothing ran (no server, or it refused) and the caller should run the job itself."""
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(address)
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "prefix": sys.prefix,
                              "version": sys.version, "path": sys.path}).encode()
        socket.send_fds(conn, [HEADER.pack(len(request))], [0, 1, 2])
        conn.sendall(request)
        replies = conn.makefile("rb")
        first = json.loads(replies.readline() or b"{}")
    except OSError as err:
        return _in_process(f"no job server answers at {address} ({err})")
    if "pid" not in first:
        return _in_process(first.get("refused", "the job server closed the connection"))
    pid = first["pid"]
    print(f"multiarg: {FORKED} {pid}", file=sys.stderr, flush=True)
    try:
        conn.sendall(b"\n")  # the job waits for this, so that its log says first where it runs
    except OSError:  # the job has gone already: the reply below is empty, and says so
        pass
    forwarded: list[int] = []

    def forward(sig, _frame):
        forwarded.append(sig)
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # it has just ended: its exit status is on its way
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    last = json.loads(replies.readline() or b"{}")
    if "exit" in last:
        # Snakemake's benchmark files measure this process, not the forked job: its own peak memory and CPU time
        # go to the log, where bench/run_summary.py reads them.
        print(f"multiarg: job process {pid} ended with exit status {last['exit']}; {USAGE} "
              f"{last['max_rss_mb']:.1f} MB, CPU {last['cpu_s']:.2f} s", file=sys.stderr, flush=True)
        return last["exit"]
    if forwarded:  # the job died of a signal we passed on: die of it too, as the job's own process would have
        signal.signal(forwarded[-1], signal.SIG_DFL)
        os.kill(os.getpid(), forwarded[-1])
    print(f"multiarg: job process {pid} ended without an exit status (killed?); "
          "see the job server's log", file=sys.stderr)
    return 1


def _in_process(reason: str) -> None:
    print(f"multiarg: running in this process, not forked by the job server: {reason}", file=sys.stderr, flush=True)


# ---- the server -------------------------------------------------------------------------------------------------
def preload(inductor: bool = False):
    """Import what the workflow's jobs import, Inductor's compiler too if they compile (``compile`` not none);
    torch's RNG state as a fresh interpreter has it."""
    import importlib
    import pkgutil

    import torch

    fresh_rng = torch.get_rng_state()
    import matplotlib.pyplot  # noqa: F401
    import scipy.stats  # noqa: F401
    import torch._dynamo  # noqa: F401  (the first optimizer imports it: a second of a training job's start)

    if inductor:  # what a job's first torch.compile call imports: seconds, and no thread that a fork would lose
        import torch._inductor.compile_fx  # noqa: F401

    import multiarg

    for module in pkgutil.iter_modules(multiarg.__path__):
        if module.name != "__main__":
            importlib.import_module(f"multiarg.{module.name}")
    return fresh_rng


def _sources() -> dict[str, int]:
    return {m.__file__: os.stat(m.__file__).st_mtime_ns for name, m in list(sys.modules.items())
            if (name == "multiarg" or name.startswith("multiarg.")) and getattr(m, "__file__", None)}


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} jobserver {os.getpid()}: {message}", file=sys.stderr, flush=True)


def _cuda_works_after_fork() -> bool:
    """A forked child can use CUDA only if this process never initialised it: check once, with a CUDA operation and
    a fused kernel (a False on a GPU machine means no job is forked)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import torch

            if torch.cuda.is_available():
                from .activations import InnerNet
                from .fused import fused_inner

                x = torch.randn(64, 2, device="cuda")
                fused_inner(InnerNet(2).cuda(), x, mode="tf32").sum().item()
            code = 0
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1] == 0


def serve(address: str, parent: int, inductor: bool = False) -> None:
    reference = dict(os.environ)
    # NumPy's and SciPy's OpenBLAS start their threads at import, and a forked child would have none of them.
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)  # bound before preloading: the first jobs wait in the backlog instead of starting alone
    listener.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        started = time.perf_counter()
        state = {"env": reference, "rng": preload(inductor), "sources": _sources(), "prefix": sys.prefix,
                 "version": sys.version, "path": sys.path[1:]}
        import torch

        state["threads"] = torch.get_num_threads()
        if not _cuda_works_after_fork():
            _log("CUDA or a fused kernel fails in a forked process; serving no jobs")
            return
        import gc

        gc.freeze()  # the preloaded objects stay shared with every job instead of being copied by its collector
        threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else "?"
        _log(f"preloaded{' with Inductor' * inductor} in {time.perf_counter() - started:.1f} s, {threads} native "
             f"thread(s); serving at {address}")
        listener.settimeout(0.5)
        while os.getppid() == parent:
            _reap()
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            if os.fork() == 0:
                listener.close()
                _job(conn, state)
            conn.close()
    finally:
        listener.close()
        if os.path.exists(address):
            os.unlink(address)
        _log("stopped")


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if status:
            _log(f"job process {pid} ended with wait status {status}")


# ---- a job, in the forked child -----------------------------------------------------------------------------------
def _job(conn: socket.socket, state: dict) -> None:
    code = 1
    try:
        request, fds = _receive(conn)
        reason = _refusal(request, state)
        if reason:
            _log(f"refused {request['argv'][1:3]}: {reason}")
            conn.sendall(json.dumps({"refused": reason}).encode() + b"\n")
            code = 0
            return
        conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        # the client and this process share the log: it writes that the job was forked, then this one begins
        if conn.recv(1) != b"\n":
            raise ConnectionError("the client left before the job began")
        _log(f"job {' '.join(request['argv'][1:4])} ...")
        _adopt(request, fds, state)
        import threading

        finished = threading.Event()
        threading.Thread(target=_die_with_client, args=(conn, finished), daemon=True).start()
        code = _run(request["argv"])
        finished.set()  # the client closes once it has the exit code: that end of file is no kill
        usage = resource.getrusage(resource.RUSAGE_SELF)
        conn.sendall(json.dumps({"exit": code, "max_rss_mb": usage.ru_maxrss / 1024,
                                 "cpu_s": usage.ru_utime + usage.ru_stime}).encode() + b"\n")
    except Exception as err:  # before _adopt this reaches the server's log, after it the job's
        _log(f"job failed to start or report: {err!r}")
    finally:
        os._exit(code)


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
    (size,) = HEADER.unpack(header)
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client left before sending its request")
        data += chunk
    return json.loads(data), fds


def _refusal(request: dict, state: dict) -> str | None:
    """Why the job would not run as in a fresh process (None: it would)."""
    for key in ("prefix", "version"):
        if request[key] != state[key]:
            return f"another interpreter ({key} {request[key]!r}, the server's {state[key]!r})"
    if request["path"][1:] != state["path"]:
        return "another sys.path"
    env, reference = request["env"], state["env"]
    differ = sorted(k for k in env.keys() | reference.keys() if k not in PER_JOB and env.get(k) != reference.get(k))
    if differ:
        return f"environment variables differ from the server's: {', '.join(differ[:8])}"
    if _sources() != state["sources"]:
        return "multiarg's sources changed since the server imported them"
    return None


def _adopt(request: dict, fds: list[int], state: dict) -> None:
    """Become the client's process: its standard streams, directory, environment, and a fresh interpreter's state."""
    import random
    import tempfile

    import numpy as np
    import torch

    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv, sys.path[:] = request["argv"], request["path"]
    threads = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else state["threads"])
    tempfile.tempdir = None
    torch.set_rng_state(state["rng"])
    random.seed()
    np.random.seed()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)


def _die_with_client(conn: socket.socket, finished) -> None:
    """The client writes nothing after its word that the job may begin: end of file before the job finished means
    it was killed, and so is its job."""
    try:
        conn.recv(1)
    finally:
        if not finished.is_set():
            os.kill(os.getpid(), signal.SIGKILL)


def _run(argv: list[str]) -> int:
    """``cli.main`` as the interpreter would run it: exit codes, tracebacks, KeyboardInterrupt, atexit."""
    import atexit
    import traceback

    from .cli import main

    try:
        main(argv[1:])
        code = 0
    except SystemExit as end:
        code = _exit_code(end.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        raise
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    return code


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


# ---- for the Snakefile ------------------------------------------------------------------------------------------
def start(log: str, inductor: bool = False) -> subprocess.Popen | None:
    """Start a server for this process's jobs (they find it through ``$MULTIARG_JOB_SERVER``), with Inductor
    preloaded if ``inductor`` (jobs that compile); None if it cannot."""
    import tempfile

    address = os.path.join(tempfile.mkdtemp(prefix="multiarg-jobs-"), "socket")
    if len(address.encode()) > 100:  # sockaddr_un holds 108 bytes
        print(f"multiarg: no job server: the socket path {address} is too long", file=sys.stderr)
        os.rmdir(os.path.dirname(address))
        return None
    os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    os.environ[ENV] = address  # before the server starts: its environment is the one jobs must match
    with open(log, "a") as out:
        # env: os.environ as Snakemake hands it to jobs; inheriting could add what a library put in the C-level
        # environment behind os.environ's back (pytest's processes get COLUMNS and LINES that way).
        server = subprocess.Popen([sys.executable, "-m", "multiarg.jobserver", address, str(os.getpid()),
                                   *["inductor"] * inductor],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  env=dict(os.environ), start_new_session=True)  # Ctrl-C reaches jobs via clients
    deadline = time.monotonic() + 30
    while not os.path.exists(address) and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return server


def stop(server: subprocess.Popen | None) -> None:
    address = os.environ.pop(ENV, None)
    if server is None:
        return
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
    if address and os.path.isdir(os.path.dirname(address)):
        import shutil

        shutil.rmtree(os.path.dirname(address))


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3:] == ["inductor"])
