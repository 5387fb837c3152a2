"""A data-parallel case as one DDP job on this host, launched by torchrun: both ends, here.

The parent starts `torchrun --standalone` (PyTorch's launcher finds a free port and watches the
ranks: when one fails it stops the others) with `python -m trainspeed.launch JOB` as each rank.
Rank 0 sends progress and its result as JSON lines on standard output, as a case's process does
(isolation.py); every rank writes its process id, and the reason it failed if it did, into the
job's folder. Whatever ends the job (a result, a dead or hung rank, Ctrl-C), the parent leaves
no rank running.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from .cases import CaseKey
from .config import RunConfig
from .data import Dataset
from .data_parallel import LOST_PEER_WORDS, Group, collective_text, timed_out
from .errors import TrainspeedError
from .isolation import EventProgress, child_config, child_environment, describe_exit, handle_event, key_from_dict
from .results import Failure, Measurement, StartupCost
from .schema import validated


def measure_group(config: RunConfig, key: CaseKey, repeat: int, data: Dataset, group: Group, threads: int,
                  progress) -> Measurement | Failure:
    """One repeat of `key` trained by `group` as one DDP job; the slowest rank's figures, or why not."""
    from .machine.devices import VISIBLE, isolate_gpus

    folder = Path(tempfile.mkdtemp(prefix="trainspeed-ranks-"))
    job = {"config": asdict(child_config(config, data)), "key": asdict(key), "repeat": repeat, "kind": group.kind,
           "backend": group.backend, "threads": threads, "folder": str(folder), "spawned_at": time.time()}
    (folder / "job.json").write_text(json.dumps(job))
    environ, _ = child_environment("cpu")
    # Each rank sees the group's GPUs alone, and takes the one of its local rank.
    environ = isolate_gpus(group.gpus, environ) if group.kind == "cuda" else {**environ, VISIBLE: ""}
    environ["OMP_NUM_THREADS"] = str(threads)
    # Its logs in the job's folder, which goes with the job: by default each job left a /tmp/torchelastic_*.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
               "--nproc-per-node", str(group.world_size), "--max-restarts", "0", "--log-dir", str(folder / "logs"),
               "-m", "trainspeed.launch", str(folder / "job.json")]
    result = None
    try:
        with open(folder / "torchrun.log", "w+") as log:
            # A session of its own: Ctrl-C reaches this process alone, which stops the job in order.
            job_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=environ,
                                           start_new_session=True)
            try:
                for line in job_process.stdout:
                    result = handle_event(line, progress) or result
                code = job_process.wait()
            finally:
                stop(job_process, folder)
            log.seek(0)
            launcher_lines = log.read().splitlines()
        if result is not None and "measurement" in result:
            return validated(Measurement, result["measurement"], "the data-parallel job")
        return Failure(failure_reason(folder, launcher_lines, code, group.world_size))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stop(job_process: subprocess.Popen, folder: Path) -> None:
    """Stop the launcher (it stops its ranks), then any rank still alive: none is left running."""
    if job_process.poll() is None:
        job_process.send_signal(signal.SIGTERM)
        try:
            job_process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(job_process.pid, signal.SIGKILL)
            job_process.wait()
    killed = []
    for pid_file in folder.glob("rank-*.pid"):
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except (ProcessLookupError, ValueError, PermissionError):
            pass  # ended already
    # Gone before the case is reported: a rank's memory and cores are free for the next case.
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Whether `pid` still runs: a zombie, waiting for its parent to collect it, holds nothing. Without
    /proc (macOS) a rank is not waited for."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def failure_reason(folder: Path, launcher_lines: list[str], code: int, world_size: int) -> str:
    """Why the job ended without a result, said of the rank that failed first, never of the clean-up that
    followed (torchrun's SIGTERM, then its SIGKILL for a rank that cannot take a SIGTERM, as a stopped one).
    In order: a rank's own error (and, when that is a collective that timed out, the rank that wrote
    nothing, which stopped answering); a rank that died without a word (killed, crashed); a rank stopped
    by a SIGTERM from outside; a rank's loss of its peer; the launcher's last line."""
    reasons = {int(path.stem.split("-")[1]): path.read_text().strip() for path in folder.glob("rank-*.failure")}
    # torchrun's summary: each failed rank and its exit code (negative: the signal that ended it).
    exits = {int(rank): int(exit_code) for rank, exit_code in
             re.findall(r"\brank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", "\n".join(launcher_lines), re.S)}
    quiet = sorted(rank for rank, exit_code in exits.items() if rank not in reasons and exit_code != 0)
    own = [rank for rank, text in sorted(reasons.items()) if not any(word in text.lower() for word in LOST_PEER_WORDS)]
    if own:
        rank = own[0]
        if quiet and "did not finish within" in reasons[rank]:
            return f"rank {quiet[0]} of {world_size} stopped answering: on rank {rank}, {reasons[rank]}"
        return f"rank {rank} of {world_size}: {reasons[rank]}"
    killed = [rank for rank in quiet if exits[rank] != -signal.SIGTERM]
    if killed:
        rank = killed[0]
        return f"rank {rank} of {world_size}: " + describe_exit(exits[rank], "").replace("the case's process", "it")
    if quiet:  # trainspeed stops a rank only after another failed: this SIGTERM came from outside
        return (f"rank {quiet[0]} of {world_size} was stopped by a SIGTERM from outside trainspeed, and the other "
                "ranks lost their peer")
    if reasons:
        return f"rank {min(reasons)} of {world_size}: {reasons[min(reasons)]}"
    last = next((line.strip() for line in reversed(launcher_lines) if line.strip(" =-")), "")  # not a rule
    return "the data-parallel job " + describe_exit(code, last).removeprefix("the case's process ")


# --- a rank's end -------------------------------------------------------------------------

def _reason(error: BaseException, timeout_s: float) -> str:
    from .machine.devices import is_out_of_memory

    text = collective_text(error)
    if is_out_of_memory(error):
        return f"out of memory ({text}); try a smaller --batch-size"
    if timed_out(text):
        return (f"a collective did not finish within {timeout_s:g} s, so a rank stopped answering ({text}); "
                "raise --dist-timeout if the ranks are only slow")
    if isinstance(error, TrainspeedError):
        return text
    return f"{type(error).__name__}: {text}"


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it stops the job in order
    job = json.loads(Path(argv[1]).read_text())
    rank = int(os.environ["RANK"])
    folder = Path(job["folder"])
    (folder / f"rank-{rank}.pid").write_text(str(os.getpid()))
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w") if rank == 0 else open(os.devnull, "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    progress = EventProgress(events)
    config = RunConfig.from_dict(job["config"])
    timeout_s = config.dist_timeout_s
    try:
        import torch
        import torch.distributed as dist

        from .distributed import join, measure_rank_repeat, open_collectives, rank_device
        from .machine import devices
        from .plan import load_data

        process_s = time.time() - job["spawned_at"]
        devices.configure_process()
        torch.set_num_threads(job["threads"])
        device = rank_device(job["kind"])
        with devices.use(device):
            join(timeout_s)
            open_collectives(job["backend"], timeout_s)
            data, load_s = load_data(config)
            outcome = measure_rank_repeat(config, key_from_dict(job["key"]), job["repeat"], data, device, progress,
                                          StartupCost(process_s=process_s, data_s=load_s), job["threads"])
            if outcome is not None:
                progress.emit(event="result", measurement=asdict(outcome))
            dist.destroy_process_group()
    except BaseException as error:  # noqa: BLE001 - every way a rank ends is the case's reason
        (folder / f"rank-{rank}.failure").write_text(_reason(error, timeout_s))
        events.flush()
        os._exit(1)  # at once: a process group with a dead peer can block an orderly exit
    events.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
