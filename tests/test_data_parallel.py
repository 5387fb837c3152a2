"""Data-parallel cases: the pure rules, then real DDP jobs of two CPU ranks (gloo), launched by torchrun."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

import trainspeed
import trainspeed.cli
from trainspeed.data_parallel import (
    Group,
    global_batch,
    loss_weight,
    merged_seconds,
    parse_group,
    planned_groups,
    scaling_efficiency,
    shard,
    threads_per_rank,
)
from trainspeed.errors import ConfigError

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_groups_are_parsed_as_torchrun_users_name_them():
    assert parse_group("cpu:2", 0) == Group("cpu", 2)
    assert parse_group("cuda", 4) == Group("cuda", 4, (0, 1, 2, 3))
    assert parse_group("cuda:1,3", 4) == Group("cuda", 2, (1, 3))
    assert parse_group("cuda:1", 4) == Group("cuda", 1, (1,))
    assert parse_group("cuda:0,1", 4).device == "cuda:0,1" and parse_group("cpu:2", 0).backend == "gloo"
    for spec, message in [("cpu:0", "N >= 1"), ("tpu", "not a group"), ("cuda:0,0", "each GPU once"),
                          ("cuda:5", "has 4 GPU"), ("cuda:x", "each GPU once")]:
        with pytest.raises(ConfigError, match=message):
            parse_group(spec, 4)
    with pytest.raises(ConfigError, match="no CUDA GPU.*cpu:2"):
        parse_group("cuda", 0)


def test_each_group_is_planned_after_its_one_device_reference_and_cores_are_split():
    groups = planned_groups(["cpu:2", "cpu:1", "cuda:2,3"], 4)
    assert groups == [Group("cpu", 1), Group("cpu", 2), Group("cuda", 1, (2,)), Group("cuda", 2, (2, 3))]
    assert threads_per_rank(groups[0], groups, 8, None) == 4  # the largest CPU group sets every CPU rank's share
    assert threads_per_rank(groups[1], groups, 8, 3) == 3
    assert threads_per_rank(Group("cpu", 3), [Group("cpu", 3)], 2, None) == 1
    # GPU ranks split the host's cores among themselves: eight ranks with every core each oversubscribe it.
    assert threads_per_rank(groups[3], groups, 16, None) == 8
    assert threads_per_rank(Group("cuda", 8, tuple(range(8))), [], 16, None) == 2
    assert threads_per_rank(Group("cuda", 8, tuple(range(8))), [], 4, None) == 1


def test_a_global_batch_splits_evenly_and_every_rank_steps():
    assert [shard(32, 2, rank) for rank in range(2)] == [(0, 16), (16, 32)]
    assert [shard(10, 3, rank) for rank in range(3)] == [(0, 4), (4, 7), (7, 10)]
    assert [shard(1, 2, rank) for rank in range(2)] == [(0, 1), (1, 1)]  # the second rank steps with nothing
    # The weights make DDP's mean of per-rank mean losses the whole batch's mean: sum(w_r * mean_r) / N.
    assert [loss_weight(n, 10, 3) for n in (4, 3, 3)] == [1.2, 0.9, 0.9]
    assert global_batch(32, 4, per_device=False) == 32 and global_batch(32, 4, per_device=True) == 128


def test_scaling_and_all_reduce_arithmetic():
    assert scaling_efficiency(1700.0, 1000.0, 2) == pytest.approx(0.85)
    assert merged_seconds([(0.0, 1.0), (0.5, 2.0), (3.0, 3.5), (3.1, 3.2)]) == pytest.approx(2.5)
    assert merged_seconds([]) == 0.0


TAG = "TRAINSPEED_TEST_TAG"


@pytest.fixture
def own(monkeypatch, tmp_path):
    """This test's processes and temporary files, told apart from anything else on the machine: every
    process it starts carries a tag in its environment, and its temporary folders live in its own TMPDIR."""
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv(TAG, tag)
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR afresh, here and in what this process creates
    yield OwnProcesses(tag, temporary)


class OwnProcesses:
    def __init__(self, tag: str, temporary: Path) -> None:
        self.tag, self.temporary = tag, temporary
        self.environ = {**os.environ, "PYTHONPATH": SRC, TAG: tag, "TMPDIR": str(temporary)}

    def alive(self) -> list[str]:
        """Command lines of the processes this test started (directly or not) that still run."""
        found = []
        marker = f"{TAG}={self.tag}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue  # ended meanwhile, or not ours to read
        return found

    def left_behind(self) -> list[str]:
        """What a job left in its temporary folder: rank folders, torchrun's logs (PyTorch's own compile
        cache, torchinductor_USER, is meant to stay)."""
        return sorted(path.name for path in self.temporary.iterdir()
                      if path.name.startswith(("trainspeed-", "torchelastic_")))


SMALL = dict(models="mlp:1", dataset="synthetic", limit=40, epochs=2, batch_size=32, synthetic_shape="8x8x3",
             inference=False, out=None, data_parallel="cpu:2")


def test_two_ranks_take_the_same_step_as_one_with_the_same_global_batch(own):
    result = trainspeed.run(**SMALL, cpu_watts=40)
    one, two = sorted(result.cases, key=lambda case: case.world_size)
    assert (one.world_size, two.world_size, one.backend, two.backend) == (1, 2, "gloo", "gloo")
    assert one.ok and two.ok
    # 40 images at batch 32: a full batch split 16 + 16, then 8 images split 4 + 4; the second epoch's
    # loss is taken after those steps, so any difference in the step would show in it.
    assert two.parallel.shards == "16 + 16"
    assert two.history[1].train_loss == pytest.approx(one.history[1].train_loss, rel=1e-5)
    assert two.test_loss == pytest.approx(one.test_loss, rel=1e-5)
    assert one.history[1].train_loss != one.history[0].train_loss
    assert two.parallel.one_device == "cpu" and two.parallel.speedup_vs_one == pytest.approx(
        two.images_per_s / one.images_per_s)
    assert 0 < two.parallel.allreduce_share < 1 and len(two.parallel.rank_epoch_s) == 2
    assert two.steady_epoch_s == max(two.parallel.rank_epoch_s)  # the slowest rank's
    # One machine's CPU, read once (by its first rank) however many ranks share it.
    assert two.energy.estimate and two.energy.source == "estimate: --cpu-watts 40 W x time"
    assert two.energy.average_w == pytest.approx(40.0)
    # No rank left running, no rank folder and no torchrun log folder (/tmp/torchelastic_*) left behind.
    assert own.alive() == [] and own.left_behind() == []


# A hung rank is found by --dist-timeout, the one timeout under test: 10 s, where the healthy ranks'
# collectives take milliseconds even on a busy machine (joining waits far longer: JOIN_TIMEOUT_S).
HUNG_TIMEOUT_S = 10


@pytest.mark.parametrize("fault, reason", [
    ("kill:mlp:1@1", "rank 1 of 2: it was killed by SIGKILL"),
    ("hang:mlp:1@1", f"rank 1 of 2 stopped answering: on rank 0, a collective did not finish within "
                     f"{HUNG_TIMEOUT_S} s"),
    ("oom:mlp:1@1", "rank 1 of 2: out of memory (injected: CUDA out of memory"),
])
def test_a_dead_or_hung_rank_fails_the_case_and_the_run_goes_on(own, monkeypatch, fault, reason):
    monkeypatch.setenv("TRAINSPEED_FAULT", fault)
    # That the run goes on past a failed job is seen once; each way of failing, on one model.
    models = "mlp:1,mlp:2" if fault.startswith("kill") else "mlp:1"
    timeout = HUNG_TIMEOUT_S if fault.startswith("hang") else 300
    result = trainspeed.run(**{**SMALL, "models": models, "dist_timeout_s": timeout})
    by_key = {(case.model, case.world_size): case for case in result.cases}
    assert by_key[("mlp:1", 1)].ok
    assert by_key[("mlp:1", 2)].status == "failed" and by_key[("mlp:1", 2)].error.startswith(reason)
    if "mlp:2" in models:
        assert by_key[("mlp:2", 1)].ok and by_key[("mlp:2", 2)].ok
    assert own.alive() == [] and own.left_behind() == []


def wait_for(path: Path, process: subprocess.Popen, timeout_s: float = 240) -> None:
    """Until `path` exists (a fault's mark: the event), or fail with what the process printed."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path.name} never appeared:\n" + process.communicate()[0][-3000:])
        time.sleep(0.05)


@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_every_rank_and_keeps_the_finished_cases(own, tmp_path, stop, code):
    # A rank that hangs keeps the job alive for as long as the test likes; the signal must end it.
    mark = tmp_path / "hung"
    environ = {**own.environ, "TRAINSPEED_FAULT": "hang:mlp:1@1", "TRAINSPEED_FAULT_MARK": str(mark)}
    run = subprocess.Popen(
        [sys.executable, "-m", "trainspeed", "run", "--data-parallel", "cpu:2", "--models", "mlp:1", "--dataset",
         "synthetic", "--synthetic-shape", "8x8x3", "--limit", "40", "--epochs", "2", "--no-inference",
         "--dist-timeout", "300", "--out", str(tmp_path / "out")],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)  # a terminal of its own: Ctrl-C goes to its foreground process group
    wait_for(mark, run)  # rank 1 is in its first step, and hangs there
    os.killpg(run.pid, stop) if stop == signal.SIGINT else run.send_signal(stop)
    output = run.communicate(timeout=120)[0]
    assert run.returncode == code, output
    assert f"interrupted by {'Ctrl-C' if stop == signal.SIGINT else 'SIGTERM'}" in output and "--resume" in output
    assert own.alive() == [] and own.left_behind() == []
    cases = json.loads((tmp_path / "out" / "results.json").read_text())["cases"]
    assert [(case["world_size"], case["status"]) for case in cases] == [(1, "ok"), (2, "interrupted")]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _two_nodes(own, out: Path) -> list[tuple[int, str]]:
    port = _free_port()
    environ = {**own.environ, "OMP_NUM_THREADS": "1"}
    environ.pop("TRAINSPEED_FAULT", None)
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
         "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "trainspeed-test",
         "-m", "trainspeed", "run", "--data-parallel", "cpu", "--models", "mlp:1", "--dataset", "synthetic",
         "--synthetic-shape", "8x8x3", "--limit", "64", "--epochs", "2", "--no-inference", "--cpu-threads", "1",
         "--cpu-watts", "40",
         "--out", str(out / f"node{node}")], env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True) for node in range(2)]
    return [(node.wait(timeout=240), node.communicate()[0]) for node in nodes]


def test_two_torchrun_nodes_on_one_host_train_one_case_and_rank_zero_alone_writes(own, tmp_path):
    for attempt in range(3):
        ended = _two_nodes(own, tmp_path / str(attempt))
        # The port was free when chosen; another program may have taken it since: choose again.
        if not any(code and "address already in use" in text.lower() for code, text in ended):
            break
    codes, outputs = zip(*ended, strict=True)
    assert codes == (0, 0), outputs
    folder = tmp_path / str(attempt)
    written = [node for node in range(2) if (folder / f"node{node}" / "results.json").exists()]
    assert len(written) == 1 and not (folder / f"node{1 - written[0]}").exists()
    results = json.loads((folder / f"node{written[0]}" / "results.json").read_text())
    (case,) = results["cases"]
    assert (case["status"], case["world_size"], case["backend"]) == ("ok", 2, "gloo")
    assert case["parallel"]["nodes"] == 2 and case["parallel"]["shards"] == "16 + 16"
    # Each machine's CPU read by its own first rank, and the two added up.
    assert case["energy"]["source"] == "estimate: --cpu-watts 40 W x time, summed over 2 machines"
    assert case["energy"]["average_w"] == pytest.approx(80.0)
    assert "2 ranks (gloo)" in outputs[written[0]] and "results:" not in outputs[1 - written[0]]
    assert own.alive() == []


def _torchrun(own, *options: str, fault: str = "") -> tuple[int, str]:
    """One torchrun job of two CPU ranks on this host (--standalone: torchrun finds a free port itself)."""
    environ = {key: value for key, value in own.environ.items() if key != "TRAINSPEED_FAULT"}
    if fault:
        environ["TRAINSPEED_FAULT"] = fault
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "trainspeed", "run", *options], env=environ, capture_output=True, text=True,
                          timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_a_torchrun_job_that_loses_a_rank_keeps_its_cases_and_only_the_same_job_finishes_it(own, tmp_path, capsys):
    out = tmp_path / "out"
    code, text = _torchrun(own, "--data-parallel", "cpu", "--models", "mlp:1,mlp:2", "--dataset", "synthetic",
                           "--synthetic-shape", "8x8x3", "--limit", "64", "--epochs", "2", "--no-inference",
                           "--dist-timeout", str(HUNG_TIMEOUT_S), "--out", str(out), fault="hang:mlp:2@1")
    said = " ".join(text.split())
    # Rank 0 says what stopped the job and how to finish it, in one message: no gloo traceback.
    assert code != 0 and "[rank0]" not in text and f'File "{SRC}' not in text, text
    assert "interrupted by a rank of the job that stopped answering (Timed out waiting" in said
    assert f"with `-m trainspeed run --resume {out}` in place of its trainspeed options" in said
    first = json.loads((out / "results.json").read_text())
    assert [(case["model"], case["status"]) for case in first["cases"]] == [("mlp:1", "ok"), ("mlp:2", "interrupted")]

    # Without torchrun: refused, and told how (not "another machine" for torchrun's thread count).
    assert trainspeed.cli.main(["run", "--resume", str(out)]) == 2
    assert "was measured by a torchrun job of 2 ranks on 1 machine: finish it the same way" in capsys.readouterr().err

    # The same job finishes it: rank 0 alone holds the folder, and the other rank trains what rank 0 planned.
    code, text = _torchrun(own, "--resume", str(out))
    assert code == 0, text
    done = json.loads((out / "results.json").read_text())
    assert [(case["model"], case["status"], case["session"]) for case in done["cases"]] == [
        ("mlp:1", "ok", 0), ("mlp:2", "ok", 1)]
    assert done["cases"][1]["world_size"] == 2 and len(done["sessions"]) == 2
    assert own.alive() == []


def test_a_gpu_jobs_ranks_see_the_parents_boards_through_its_own_mask(monkeypatch, tmp_path):
    """Under CUDA_VISIBLE_DEVICES=2,3 (as SLURM sets it) cuda:0,1 are boards 2 and 3, and each GPU rank
    gets its share of the cores."""
    from types import SimpleNamespace

    from trainspeed import launch
    from trainspeed.cases import CaseKey, Workload
    from trainspeed.config import RunConfig

    started = []

    class Launcher:
        def __init__(self, command, env, **_):
            started.append(env)
            self.stdout, self.pid = iter(()), 0

        def wait(self, timeout=None):
            return 1

        def poll(self):
            return 1

    monkeypatch.setattr(launch.subprocess, "Popen", Launcher)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa,2,3")
    work = Workload("mlp:1", "synthetic", (3, 8, 8), 40, 10, 32, "fp32", world_size=2, backend="nccl")
    data = SimpleNamespace(name="synthetic", source="")
    group = Group("cuda", 2, (1, 2))
    failed = launch.measure_group(RunConfig(), CaseKey(work, "cuda:1,2"), 1, data, group,
                                  threads_per_rank(group, [group], 16, None), progress=None)
    assert started[0]["CUDA_VISIBLE_DEVICES"] == "2,3" and started[0]["OMP_NUM_THREADS"] == "8"
    assert failed.reason.startswith("the data-parallel job")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa,MIG-bbbb")
    launch.measure_group(RunConfig(), CaseKey(work, "cuda:0,1"), 1, data, Group("cuda", 2, (1, 0)), 8, None)
    assert started[1]["CUDA_VISIBLE_DEVICES"] == "MIG-bbbb,GPU-aaaa"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    launch.measure_group(RunConfig(), CaseKey(work, "cuda:0,1"), 1, data, Group("cuda", 2, (0, 1)), 8, None)
    assert started[2]["CUDA_VISIBLE_DEVICES"] == "0,1"


GOOD = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500"}


@pytest.mark.parametrize("changed, message", [
    ({"RANK": "abc"}, "RANK='abc' is not what torchrun sets"),
    ({"RANK": "3"}, "RANK=3 with WORLD_SIZE=2: ranks are numbered 0 to 1"),
    ({"WORLD_SIZE": "0", "RANK": "0"}, "WORLD_SIZE='0' is not what torchrun sets (a whole number of at least 1)"),
    ({"LOCAL_RANK": "2"}, "LOCAL_RANK=2 with LOCAL_WORLD_SIZE=2"),
    ({"MASTER_PORT": "70000"}, "MASTER_PORT=70000 is not a port"),
])
def test_a_broken_torchrun_environment_is_named_in_one_line(changed, message):
    from trainspeed.data_parallel import RankPlace, rank_place

    assert rank_place(GOOD) == RankPlace(1, 2, 1, 2)
    with pytest.raises(ConfigError) as raised:
        rank_place({**GOOD, **changed})
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


@pytest.mark.parametrize("error, message", [
    ("DistNetworkError", "MASTER_PORT=29500 is in use by another program: choose a free port"),
    ("DistStoreError", "rank 1 waited 120 s for the job's WORLD_SIZE=2 ranks at 127.0.0.1:29500, and not all"),
])
def test_a_rank_that_cannot_join_says_why(monkeypatch, error, message):
    import torch.distributed as dist

    from trainspeed import distributed

    def refuse(*args, **kwargs):
        raise getattr(dist, error)("The server socket has failed to listen on any local network address. "
                                   "port: 29500, useIpv6: 0, code: -98, name: EADDRINUSE" if error == "DistNetworkError"
                                   else "Timed out after 121 seconds waiting for clients. 1/2 clients joined.")

    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", refuse)
    with pytest.raises(ConfigError, match=message):
        distributed.join(3)


def test_a_run_under_a_broken_torchrun_environment_ends_in_one_line(tmp_path):
    environ = {**os.environ, "PYTHONPATH": SRC, **GOOD, "RANK": "3"}
    done = subprocess.run([sys.executable, "-m", "trainspeed", "run", "--data-parallel", "cpu", "--models", "mlp:1",
                           "--dataset", "synthetic", "--limit", "40", "--out", str(tmp_path / "out")],
                          env=environ, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("trainspeed: error: RANK=3 with WORLD_SIZE=2")


def test_oversubscribed_cores_are_flagged_and_never_reported_as_scaling(monkeypatch):
    """cpu:3 on 2 cores was '3.3x slower than one (10% scaling efficiency)', and --cpu-threads 8 on 2 cores
    went unremarked."""
    import report_fixtures as fx
    from trainspeed.data_parallel import ParallelFigures
    from trainspeed.machine import validity
    from trainspeed.reporting.scaling import scaling_sentences, scaling_text

    monkeypatch.setattr(validity, "usable_cores", lambda: 2)
    assert validity.oversubscription(2) is None
    assert validity.oversubscription(8).startswith("8 threads on 2 cores: the cores are oversubscribed")
    assert validity.oversubscription(1, processes=3).startswith("3 processes x 1 threads on 2 cores")
    cpu = torch.device("cpu")
    before = validity.Snapshot.take()
    assert any("oversubscribed" in w for w in validity.warnings_for(cpu, cpu, before, before, threads=8))
    assert not any("oversubscribed" in w for w in validity.warnings_for(cpu, cpu, before, before, threads=2))

    def group(world, threads, speedup):
        return fx.case("mlp:1", "cpu", 1.0, world_size=world, backend="gloo", parallel=ParallelFigures(
            world_size=world, backend="gloo", threads_per_rank=threads, cores=2, speedup_vs_one=speedup,
            scaling_efficiency=speedup / world, allreduce_share=0.2))

    crowded, fitting = group(3, 1, 0.3), group(2, 1, 1.7)
    assert crowded.parallel.oversubscribed and not fitting.parallel.oversubscribed
    crowded_says, fitting_says = scaling_sentences([crowded, fitting])
    assert "on 2 cores" in crowded_says and "oversubscribed, so this is no scaling result" in crowded_says
    assert "efficiency" not in crowded_says and "85% scaling efficiency" in fitting_says
    assert scaling_text(crowded) == "0.30x\noversubscribed" and scaling_text(fitting) == "1.70x, 85%"


def _summary(*failed: tuple[int, int]) -> list[str]:
    """torchrun's closing summary as it prints it (PyTorch 2.13): each failed rank and its exit code."""
    lines = ["trainspeed.launch FAILED", "-" * 60, "Failures:"]
    for rank, code in failed:
        lines += [f"[{rank}]:", "  time      : 2026-12-04_17:14:25", "  host      : localhost",
                  f"  rank      : {rank} (local_rank: {rank})", f"  exitcode  : {code} (pid: 1375{rank})",
                  "  error_file: <N/A>", "-" * 60]
    return lines + ["=" * 60]


TIMED_OUT = ("a collective did not finish within 10 s, so a rank stopped answering (Timed out waiting 10000ms for "
             "recv operation to complete); raise --dist-timeout if the ranks are only slow")
LOST = "RuntimeError: Connection closed by peer [127.0.0.1]:7077. This is typically caused by a remote worker crashing."


@pytest.mark.parametrize("written, failed, reason", [
    # SIGSTOP past --dist-timeout: rank 0 timed out; torchrun's SIGTERM could not reach the stopped rank, its
    # SIGKILL did. It was reported as "killed by SIGKILL (often the kernel's out-of-memory killer)".
    ({0: TIMED_OUT}, [(0, 1), (1, -9)], "rank 1 of 2 stopped answering: on rank 0, a collective did not finish"),
    # A SIGTERM from outside to rank 1: rank 0 lost its peer. It was "failed with exit status 1: =====".
    ({0: LOST}, [(0, 1), (1, -15)], "rank 1 of 2 was stopped by a SIGTERM from outside trainspeed"),
    # The kernel's out-of-memory killer: a SIGKILL first, and the peer lost after it.
    ({0: LOST}, [(0, 1), (1, -9)], "rank 1 of 2: it was killed by SIGKILL (often the kernel's out-of-memory"),
    ({1: "out of memory (CUDA out of memory); try a smaller --batch-size"}, [(1, 1), (0, -15)],
     "rank 1 of 2: out of memory"),
    ({}, [], "the data-parallel job failed with exit status 1: torch.distributed.elastic...ChildFailedError:"),
])
def test_a_failed_job_is_reported_by_its_first_cause_not_its_clean_up(tmp_path, written, failed, reason):
    from trainspeed.launch import failure_reason

    for rank, text in written.items():
        (tmp_path / f"rank-{rank}.failure").write_text(text)
    launcher = ["torch.distributed.elastic...ChildFailedError:", "=" * 60] + (_summary(*failed) if failed else [])
    assert failure_reason(tmp_path, launcher, 1, 2).startswith(reason)
