"""The SLURM profile: its name resolves from the repository root, its settings follow one place, and on
a real one-node SLURM cluster a slice of the tiny DAG goes through sbatch (marker `slurm`).

The cluster test installs Debian's slurm-wlm when missing (root only), starts munged/slurmctld/slurmd with
tests/slurm/start_cluster.sh, runs `snakemake --profile slurm ...` from the repository root exactly
as the README says (GPU requests turned off with MULTIARG_SLURM_GPUS=0: the node has no GPU, and
sbatch refuses any), and stops the daemons afterwards, also on failure. Skips, with the reason,
where no cluster can be set up. Every subprocess has a timeout.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "tests" / "slurm"
SNAKEMAKE_TIMEOUT = 900  # the slice takes ~2 min on 2 cores
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
# param_table alone, two session-I nets (one grouped SLURM job), and one session-II training with
# the data preparation it needs.
RUN = "results/runs/mnist/mlp/arg2/seed0/session2"
TARGETS = ("results/tables/param_counts.csv", "results/init/arg2/seed0.pt", "results/init/arg2/seed1.pt",
           f"{RUN}/metrics.csv")


# The daemons live in sbin, which a non-login shell's PATH (CI's, `env -i`) may leave out.
PATH = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def run(cmd, timeout, **kwargs):
    env = {**kwargs.pop("env", os.environ), "PATH": PATH}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def ensure_slurm_installed():
    """Install slurm-wlm with apt when a binary is missing (returns the seconds it took, else None);
    skip, with the reason, where that cannot work."""
    if all(shutil.which(b, path=PATH) for b in SLURM_BINARIES):
        return None
    if os.geteuid() != 0:
        pytest.skip("SLURM is not installed and installing it needs root (apt-get install slurm-wlm)")
    if not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and there is no apt-get to install Debian's slurm-wlm")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    start = time.monotonic()
    for cmd, limit in ((["apt-get", "update"], 300), (["apt-get", "install", "-y", "-q", "slurm-wlm"], 900)):
        try:
            result = run(cmd, limit, env=env)
        except subprocess.TimeoutExpired:
            pytest.skip(f"`{' '.join(cmd)}` did not finish within {limit} s")
        if result.returncode != 0:
            pytest.skip(f"`{' '.join(cmd)}` failed: {(result.stderr or result.stdout).strip()[-500:]}")
    missing = [b for b in SLURM_BINARIES if not shutil.which(b, path=PATH)]
    if missing:
        pytest.skip(f"slurm-wlm installed but {missing} not on PATH")
    return time.monotonic() - start


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node cluster; its daemons are stopped at teardown whatever happened."""
    install_s = ensure_slurm_installed()
    state = tmp_path_factory.mktemp("slurm-cluster")
    try:
        t0 = time.monotonic()
        start = run(["bash", str(SCRIPTS / "start_cluster.sh"), str(state)], 180)
        if start.returncode == 3:
            pytest.skip(f"no test cluster: {(start.stderr.strip().splitlines() or ['start refused'])[-1]}")
        assert start.returncode == 0, f"cluster did not start:\n{start.stdout}\n{start.stderr}"
        yield {"state": state, "install_s": install_s, "start_s": time.monotonic() - t0, "sinfo": start.stdout}
    finally:
        stop = run(["bash", str(SCRIPTS / "stop_cluster.sh"), str(state)], 180)
        assert stop.returncode == 0, stop.stderr


def kill_group(proc):
    """SIGTERM (snakemake then scancels its jobs), SIGKILL after 30 s, to the whole process group."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(grace)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def squeue():
    """squeue as a user sees it (pending and running jobs; the comment names the rule)."""
    try:
        return run(["squeue", "-o", "%.5i %.9P %.8T %.8M %.4C %.7m %.13b %.45k"], 10).stdout
    except subprocess.TimeoutExpired:
        return ""


def job_states(shot):
    """(job id, state) per job: what changed between two squeue outputs, ignoring elapsed time."""
    return [tuple(line.split()[:3:2]) for line in shot.splitlines()[1:]]


def scontrol_job(jobid):
    out = run(["scontrol", "show", "job", str(jobid)], 10).stdout
    return dict(re.findall(r"(\w[\w/:]*)=(\S*)", out))


def minutes(limit):
    """SLURM's [D-]HH:MM:SS as minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = map(int, hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + s / 60


def test_profiles_resolve_by_bare_name_from_the_repository_root(monkeypatch):
    """`--profile NAME` looks in the working directory, ~/.config/snakemake and /etc/xdg/snakemake;
    the links ./slurm and ./local make the names work from the repository root."""
    from snakemake.cli import get_profile_dir

    monkeypatch.chdir(REPO)
    for name in ("slurm", "local"):
        _, config = get_profile_dir(name)
        assert config.resolve() == REPO / "workflow" / "profiles" / name / "config.yaml"
        _, config = get_profile_dir(f"workflow/profiles/{name}")
        assert config.resolve() == REPO / "workflow" / "profiles" / name / "config.yaml"


def slurm_profile_args(monkeypatch, **env):
    from snakemake.profiles import ProfileConfigFileParser

    for key in ("PARTITION", "GPU_PARTITION", "ACCOUNT", "GPUS"):
        monkeypatch.delenv(f"MULTIARG_SLURM_{key}", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(f"MULTIARG_SLURM_{key}", value)
    with open(REPO / "workflow" / "profiles" / "slurm" / "config.yaml") as fh:
        return ProfileConfigFileParser().parse(fh)


def test_slurm_profile_partition_account_and_gpus_come_from_one_place(monkeypatch):
    args = slurm_profile_args(monkeypatch)
    assert args["executor"] == "slurm" and args["slurm-status-command"] == "squeue"
    assert args["default-resources"] == []  # cluster default partition, no -A
    assert "train_session2:gpu=1" in args["set-resources"]
    assert not any("slurm_partition" in a for a in args["set-resources"])

    args = slurm_profile_args(monkeypatch, PARTITION="cpu-long", ACCOUNT="123456", GPU_PARTITION="gpu", GPUS="0")
    assert args["default-resources"] == ["slurm_partition='cpu-long'", "slurm_account='123456'"]
    for rule in ("train_session2", "train_session3", "collect_inputs"):
        assert f"{rule}:gpu=0" in args["set-resources"] and f"{rule}:slurm_partition='gpu'" in args["set-resources"]


def test_slurm_profile_lists_every_gpu_rule(monkeypatch):
    """MULTIARG_SLURM_GPUS=0 reaches only the rules the profile names: a new GPU rule must be added there."""
    declared = {name for path in (REPO / "workflow" / "rules").glob("*.smk")
                for name, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", path.read_text(), re.M)
                if re.search(r"^\s+gpu=", body, re.M)}
    listed = {a.split(":")[0] for a in slurm_profile_args(monkeypatch, GPUS="0")["set-resources"] if ":gpu=0" in a}
    assert declared and declared <= listed, f"add {sorted(declared - listed)} to gpu_rules in the slurm profile"


@pytest.mark.slurm
def test_slurm_profile_runs_a_slice_of_the_dag_through_sbatch(mirror, cluster, tmp_path, capsys):
    cpus = int(run(["sinfo", "-h", "-N", "-o", "%c"], 10).stdout.split()[0])
    log = tmp_path / "snakemake.log"
    env = {**os.environ, "MULTIARG_DATA_MIRROR": str(mirror), "MULTIARG_SLURM_GPUS": "0",
           # the jobs' shell commands call `python -m multiarg`: the environment running these tests
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    # the tiny config through a file that extends it, so that the jobs sbatch runs read `extends` too
    tiny = tmp_path / "tiny-extended.yaml"
    tiny.write_text(f"extends: {REPO / 'tests' / 'configs' / 'tiny.yaml'}\n")
    cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm", *TARGETS, "--directory", str(tmp_path),
           "--configfile", str(REPO / "config.yaml"), str(tiny),
           # one SLURM job may use every CPU of the node; poll from 2 s on instead of 20 s
           "--cores", str(cpus), "--slurm-init-seconds-before-status-checks", "2",
           "--slurm-keep-successful-logs"]
    snapshots = []  # (seconds, squeue output) whenever the jobs or their states change
    start = time.monotonic()
    with open(log, "w") as fh:
        # bare profile name, resolved from the repository root; own session so a hang can be killed whole
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while proc.poll() is None:
                if time.monotonic() - start > SNAKEMAKE_TIMEOUT:
                    raise TimeoutError(f"snakemake still running after {SNAKEMAKE_TIMEOUT} s")
                shot = squeue()
                if job_states(shot) and (not snapshots or job_states(snapshots[-1][1]) != job_states(shot)):
                    snapshots.append((time.monotonic() - start, shot))
                time.sleep(2)
        finally:
            if proc.poll() is None:
                kill_group(proc)
    wall = time.monotonic() - start
    text = log.read_text()
    with capsys.disabled():
        took = cluster["install_s"]
        installed = "already installed" if took is None else f"installed in {took:.0f} s"
        print(f"\nslurm-wlm {installed}; cluster idle after {cluster['start_s']:.1f} s\n{cluster['sinfo'].rstrip()}")
        print(f"snakemake --profile slurm: {wall:.0f} s wall, {len(snapshots)} distinct squeue views")
        for t, shot in snapshots:
            print(f"--- squeue at {t:.0f} s\n{shot.rstrip()}")
    assert proc.returncode == 0, text[-5000:]
    assert re.search(r"Using profiles? slurm\b", text)  # with the workflow profile (cores) beside it

    for target in TARGETS:
        assert (tmp_path / target).stat().st_size > 0, target
    assert len((tmp_path / RUN / "metrics.csv").read_text().splitlines()) == 1 + 2  # header + 2 epochs

    # Every rule ran as a SLURM job: the plugin names them and keeps their logs (asked to).
    submitted = {log_path: jobid for jobid, log_path in
                 re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.$", text, re.M)}
    slurm_logs = tmp_path.resolve() / ".snakemake" / "slurm_logs"
    folders = {Path(p).relative_to(slurm_logs).parts[0] for p in submitted}
    assert folders == {"group_summary_param_table", "group_pretrain_pretrain_inner", "rule_prepare_data",
                       "rule_train_session2"}, folders
    for path in submitted:
        assert Path(path).is_file(), path
    # Both session-I nets ran inside the one grouped job.
    (pretrain_log,) = [p for p in submitted if "group_pretrain" in p]
    assert "results/init/arg2/seed0.pt" in Path(pretrain_log).read_text()
    assert "results/init/arg2/seed1.pt" in Path(pretrain_log).read_text()

    # slurmctld still holds the finished jobs (MinJobAge): what was requested and how they ended.
    jobs = {Path(p).relative_to(slurm_logs).parts[0]: scontrol_job(j) for p, j in submitted.items()}
    with capsys.disabled():
        for name, job in jobs.items():
            print(f"{name}: JobId={job.get('JobId')} {job.get('JobState')} CPUs={job.get('NumCPUs')} "
                  f"mem={job.get('MinMemoryNode')} time={job.get('TimeLimit')} gres={job.get('TresPerJob', '-')}")
    assert all(job["JobState"] == "COMPLETED" for job in jobs.values()), jobs
    # The training job got what its rule declares (threads -> CPUs, mem_mb -> --mem, runtime -> -t, as
    # Snakemake printed them) and, with MULTIARG_SLURM_GPUS=0, no GPU.
    block = re.search(r"^rule train_session2:\n(?:    .*\n)+", text, re.M).group(0)
    threads = re.search(r"threads: (\d+)", block)
    train = jobs["rule_train_session2"]
    assert train["NumCPUs"] == (threads.group(1) if threads else "1")
    assert train["MinMemoryNode"] == re.search(r"\bmem_mb=(\d+)", block).group(1) + "M"
    assert minutes(train["TimeLimit"]) == int(re.search(r"\bruntime=(\d+)", block).group(1))
    assert "gpu=0" in block and "gpu" not in train.get("TresPerJob", "")
    assert any(re.search(r"\bRUNNING\b", shot) for _, shot in snapshots), "squeue never showed a running job"
