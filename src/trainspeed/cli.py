"""The `trainspeed` command: parses flags, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import textwrap
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from . import __version__
from .errors import TrainspeedError


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def _sizes(text: str) -> list[int]:
    try:
        return [int(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers such as 32 or 32,256,2048, got {text!r}") from None


def _shape(text: str) -> tuple[int, int, int]:
    try:
        height, width, channels = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxWxC such as 32x32x3, got {text!r}") from None
    return height, width, channels


# Each subcommand's --help: what it does, what it writes, and examples to copy.
DESCRIPTIONS = {
    "devices": ("Lists the CPU (model, cores, threads, instruction sets) and every GPU trainspeed can use, with the "
                "precisions each supports; where no GPU can be used, says why and how to fix it. Then the engines: "
                "which Keras backends are installed. Writes nothing.",
                ["trainspeed devices"]),
    "run": ("Trains the seeds' models the same way on each device, times every epoch with the device "
            "synchronized, checks test accuracy, times the trained network answering, and prints a table and "
            "the headline. Writes OUT/results.json and results.csv (after every case), report.md, report.html "
            "and charts; with --save-models, OUT/models/*.safetensors.",
            ["trainspeed run", "trainspeed run --models cnn --devices cpu,cuda --epochs 10 --out results/",
             "trainspeed run --dataset synthetic --limit 2000 --batch-size 32,256,2048",
             "trainspeed run --resume results/            # finish a run that was interrupted"]),
    "predict": ("Classifies your own pictures (PNG, JPEG, any size or mode) with a network saved by "
                "`trainspeed run --save-models`: prints the top classes with their probabilities, and what was "
                "done to each picture to fit the model. Writes nothing.",
                ["trainspeed predict results/models/cnn-cpu-cifar10-b32-fp32.safetensors cat.png dog.jpg",
                 "trainspeed predict MODEL *.png --top 5 --json > answers.json"]),
    "report": ("Rebuilds the report of a run from its results file: report.md, a self-contained report.html "
               "and the PNG charts, beside the file or in --out.",
               ["trainspeed report results/results.json", "trainspeed report results/ --out shared-report/"]),
    "compare": ("Puts the results of several machines side by side: a column per machine and device, speedups "
                "over a baseline, the settings that differ. Writes report.md, report.html and charts in --out.",
                ["trainspeed compare laptop.json server.json",
                 "trainspeed compare laptop/ server/ --baseline laptop:cpu --out compare/"]),
}


def _subcommand(commands, name: str, help_text: str) -> argparse.ArgumentParser:
    description, examples = DESCRIPTIONS[name]
    return commands.add_parser(name, help=help_text, description=textwrap.fill(description, 78),
                               epilog="examples:\n" + "\n".join(f"  {example}" for example in examples),
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainspeed", description="How much faster does this machine's GPU train a network than its CPU?")
    parser.add_argument("--version", action="version", version=f"trainspeed {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _subcommand(commands, "devices", "list the CPU and GPUs (and why a GPU cannot be used), and the engines")

    run = _subcommand(commands, "run", "train the models on each device and compare their speed")
    run.add_argument("--models", type=_names, default=None,
                     help="comma-separated models: ann, cnn, mlp:N (default: ann,cnn)")
    run.add_argument("--devices", type=_names, default=None,
                     help="comma-separated devices: cpu, cuda, cuda:N, mps (default: CPU and every GPU)")
    run.add_argument("--dataset", default="auto",
                     help="auto, cifar10, fashion_mnist, mnist or synthetic (default: auto)")
    run.add_argument("--data-dir", default=None, help="a folder or archive holding the data set already")
    run.add_argument("--no-download", dest="download", action="store_false",
                     help="never download; use only data already on this machine")
    run.add_argument("--epochs", type=int, default=3, help="epochs per case (default: 3)")
    run.add_argument("--batch-size", dest="batch_sizes", type=_sizes, default=[32],
                     help="batch size, or several to compare: 32,256,2048 (default: 32, as Keras)")
    run.add_argument("--precision", dest="precisions", type=_names, default=["fp32"],
                     help="fp32 (faithful, default), tf32 (GPU tensor cores) or bf16 (autocast); several to compare")
    run.add_argument("--engines", "--engine", dest="engines", type=_names, default=["trainspeed"],
                     help="who trains: trainspeed (default), keras-tensorflow, keras-jax, keras-torch (the seeds' "
                          "Keras code on that backend); several to compare side by side")
    run.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                     help="on a GPU, launch every step from Python instead of replaying a recorded CUDA graph")
    run.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    run.add_argument("--seed", type=int, default=0, help="seed for data order, weights and dropout (default: 0)")
    run.add_argument("--cpu-threads", type=int, default=None, help="threads for the CPU (default: all cores)")
    run.add_argument("--synthetic-shape", type=_shape, default=(32, 32, 3),
                     help="image shape HxWxC of the synthetic data set (default: 32x32x3)")
    run.add_argument("--repeats", type=int, default=1,
                     help="run each case N times and report the median and spread (default: 1)")
    run.add_argument("--time-budget", dest="time_budget_s", type=float, default=None, metavar="SECONDS",
                     help="per case: past it, time steady steps only and project the epoch time")
    run.add_argument("--find-max-batch", action="store_true",
                     help="after running out of memory, find the largest batch size that fits")
    run.add_argument("--no-inference", dest="inference", action="store_false",
                     help="skip timing the trained network answering one image and a batch of 1024 (~1 s a case)")
    run.add_argument("--save-models", action="store_true",
                     help="save each trained network to OUT/models/ for trainspeed predict (safetensors)")
    run.add_argument("--data-parallel", dest="data_parallel", nargs="+", action="extend", default=[],
                     metavar="GROUP",
                     help="train each model as one DDP job on a group, beside its one-device reference: cpu:2 (two "
                          "CPU processes, gloo, the cores split), cuda (every GPU), cuda:0,1; several groups allowed. "
                          "Without --devices, only the groups train")
    run.add_argument("--per-device-batch", action="store_true",
                     help="with --data-parallel: every device trains --batch-size images a step (a bigger global "
                          "batch, another recipe) instead of its share of them (the default, the seeds' recipe)")
    run.add_argument("--dist-timeout", dest="dist_timeout_s", type=float, default=300.0, metavar="SECONDS",
                     help="how long a rank waits for the others before the data-parallel case fails (default: 300)")
    _worth_flags(run)
    run.add_argument("--cpu-watts", type=float, default=None, metavar="W",
                     help="where the CPU's energy cannot be read (no RAPL, as in most VMs): its power, e.g. its "
                          "TDP, for an energy estimate labelled as one")
    run.add_argument("--in-process", dest="isolate", action="store_false",
                     help="run cases in this process instead of one child process each (no crash isolation)")
    run.add_argument("--resume", type=Path, default=None, metavar="DIR",
                     help="finish an interrupted run in DIR with its own settings (other flags are ignored)")
    run.add_argument("--out", default="trainspeed-results",
                     help="folder for results.json and the report (default: %(default)s)")

    predict = _subcommand(commands, "predict", "classify your own pictures with a saved model")
    predict.add_argument("model", type=Path, help="a .safetensors file from trainspeed run --save-models")
    predict.add_argument("images", type=Path, nargs="+", help="PNG or JPEG files, any size or mode")
    predict.add_argument("--top", type=int, default=3, help="how many classes to show per image (default: 3)")
    predict.add_argument("--json", action="store_true", help="print JSON for machines instead of a table")

    report = _subcommand(commands, "report", "rebuild the report (Markdown, HTML, charts) from a results file")
    report.add_argument("results", type=Path, help="a results.json written by trainspeed run")
    report.add_argument("--out", type=Path, default=None, help="folder for the report (default: the file's folder)")
    _worth_flags(report, again=True)

    compare = _subcommand(commands, "compare", "put results from several machines side by side")
    compare.add_argument("results", type=Path, nargs="+", help="results files, e.g. laptop.json server.json")
    compare.add_argument("--baseline", default=None,
                         help="machine:device to compare against, e.g. laptop:cpu (default: the first CPU)")
    compare.add_argument("--out", type=Path, default=Path("trainspeed-compare"),
                         help="folder for the comparison report (default: %(default)s)")
    _worth_flags(compare, again=True)
    return parser


def _worth_flags(command: argparse.ArgumentParser, again: bool = False) -> None:
    instead = " (instead of those the run was given)" if again else ""
    command.add_argument("--price", action="append", default=None, metavar="DEVICE=PRICE,...",
                         help="money per hour per device or kind, e.g. cpu=0.05,cuda=2.49: cost per epoch, per 10 "
                              f"epochs and per million images, and the verdict{instead}")
    command.add_argument("--currency", default=None, help=f"what the prices are in, e.g. USD or EUR{instead}")


def cmd_devices(args: argparse.Namespace, console: Console) -> int:
    from .keras_engine.backends import engines_installed
    from .machine.describe import report
    from .reporting.terminal import devices_table, engines_table

    console.print(devices_table(report()))
    console.print(engines_table(engines_installed()))
    return 0


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from .config import DEFAULT_MODELS, RunConfig
    from .data_parallel import launched_by_torchrun
    from .execute import resume_run, run
    from .prices import parse_prices
    from .reporting.terminal import inference_table, results_table, warning_lines
    from .stopping import stops_as_interrupts

    config = RunConfig(
        models=args.models or list(DEFAULT_MODELS), devices=args.devices, dataset=args.dataset,
        data_dir=args.data_dir, download=args.download, epochs=args.epochs, batch_sizes=args.batch_sizes,
        precisions=args.precisions, engines=args.engines, cuda_graphs=args.cuda_graphs,
        limit=args.limit, seed=args.seed, cpu_threads=args.cpu_threads, repeats=args.repeats,
        time_budget_s=args.time_budget_s, find_max_batch=args.find_max_batch, isolate=args.isolate,
        synthetic_shape=args.synthetic_shape, out=args.out, inference=args.inference, save_models=args.save_models,
        data_parallel=args.data_parallel, per_device_batch=args.per_device_batch, dist_timeout_s=args.dist_timeout_s,
        cpu_watts=args.cpu_watts, prices=parse_prices(",".join(args.price)) if args.price is not None else {},
        currency=args.currency or "",
    )
    if args.resume:
        args.out = str(args.resume)
        if args.price is not None or args.currency is not None or args.cpu_watts is not None:
            # The run keeps the settings it was measured with; prices belong to the report.
            Console(stderr=True).print("[yellow]note:[/] --price, --currency and --cpu-watts are ignored with "
                                       "--resume (the run keeps its own settings); to re-price it afterwards: "
                                       f"trainspeed report {escape(str(args.resume))} --price ...")
    results_file = Path(args.out) / "results.json"
    try:
        with stops_as_interrupts():
            if launched_by_torchrun():
                from .rank_run import run_as_rank

                result = run_as_rank(config, resume_from=args.resume, console=Console(stderr=True))
                if result is None:  # a rank other than 0: rank 0 speaks and writes for the job
                    return 0
            elif args.resume:
                result = resume_run(args.resume, console=Console(stderr=True))
            else:
                result = run(config, console=Console(stderr=True))
    except KeyboardInterrupt as interrupt:
        return _interrupted(interrupt, results_file, args.out)
    comparison = _compare([(None, result)], None)
    # Files first: a closed terminal or pipe must not cost the report; a failed report must not cost the table.
    try:
        written, report_error = _write_report(comparison, Path(args.out)), None
    except TrainspeedError as error:
        written, report_error = [], error
    console.print(results_table(result, console.width))
    answering = inference_table(result)
    if answering is not None:
        console.print(answering)
    for line in warning_lines(result):
        console.print(line)
    console.print(f"results: {escape(str(results_file))}")
    _print_report(comparison, written, console)
    if report_error is not None:
        print(f"trainspeed: error: the results are safe in {results_file}, but the report was not written: "
              f"{report_error}", file=sys.stderr)
        return 2
    return 0 if all(case.ok for case in result.cases) else 1


def _interrupted(interrupt: KeyboardInterrupt, results_file: Path, out: str) -> int:
    """A run stopped by Ctrl-C, SIGTERM or SIGHUP: its finished cases reported, and how to finish it.
    Under SIGHUP the terminal may be gone: what cannot be printed is not an error."""
    from .data_parallel import launched_by_torchrun, resume_command
    from .reporting.build import report_beside
    from .stopping import exit_code, how

    report = ""
    with contextlib.suppress(TrainspeedError, OSError):  # else the results are safe, and `report` builds it
        report = f" (report: {escape(str(report_beside(results_file)[1]))})" if results_file.is_file() else ""
    with contextlib.suppress(OSError):
        Console(stderr=True).print(f"[yellow]interrupted by {how(interrupt)}; the finished cases are in "
                                   f"{escape(str(results_file))}{report}; finish the run with: "
                                   f"{escape(resume_command(out, launched_by_torchrun()))}[/]")
    return exit_code(interrupt)


def _compare(labelled, baseline: str | None):
    from .reporting.comparison import compare

    return compare(labelled, baseline)


def _write_report(comparison, out: Path) -> list[Path]:
    from .reporting.build import write_report

    return write_report(comparison, out)


def _print_report(comparison, written: list[Path], console: Console) -> None:
    from .reporting.answering import inference_headlines
    from .reporting.comparison import engine_effects, headlines, precision_effects

    for sentence in headlines(comparison) + inference_headlines(comparison):
        console.print(f"[bold]{escape(sentence)}[/]")
    for effect in [*engine_effects(comparison), *precision_effects(comparison)]:
        style = "yellow" if effect.costs_accuracy else "bold"
        console.print(f"[{style}]{escape(effect.sentence)}[/]")
    from .reporting.worth import missing, verdicts

    worth = [f"  [bold]{escape(sentence)}[/]" for sentence in verdicts(comparison)]
    worth += [f"  {escape(line)}" for line in missing(comparison)]
    for line in ["[bold]Is it worth it?[/]", *worth] if worth else []:
        console.print(line)
    for note in comparison.notes:  # what the comparison left out or merged, and why
        console.print(f"[yellow]note:[/] {escape(note)}")
    if written:
        console.print(f"report: {escape(str(written[1]))} and {len(written) - 1} more files in "
                      f"{escape(str(written[1].parent))}")


def _report(labelled, out: Path, baseline: str | None, console: Console) -> None:
    comparison = _compare(labelled, baseline)
    _print_report(comparison, _write_report(comparison, out), console)


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from .prices import repriced
    from .reporting.build import report_folder
    from .results import RunResult
    from .schema import results_file

    labelled = repriced([(None, RunResult.read(args.results))], args.price, args.currency)
    _report(labelled, args.out or report_folder(results_file(args.results), args.price is not None), None, console)
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    from .prices import repriced
    from .reporting.comparison import machine_label
    from .results import RunResult
    from .schema import results_file

    labelled = [(machine_label(results_file(path)), RunResult.read(path)) for path in args.results]
    _report(repriced(labelled, args.price, args.currency), args.out, args.baseline, console)
    return 0


def cmd_predict(args: argparse.Namespace, console: Console) -> int:
    from .errors import ConfigError
    from .prediction import predict_files
    from .reporting.terminal import prediction_table

    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    answers = predict_files(args.model, args.images, args.top)
    if args.json:
        print(answers.to_json())
    else:
        console.print(prediction_table(answers))
    return 0


COMMANDS = {"devices": cmd_devices, "run": cmd_run, "predict": cmd_predict, "report": cmd_report,
            "compare": cmd_compare}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        return COMMANDS[args.command](args, console)
    except TrainspeedError as error:
        print(f"trainspeed: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader left early (`trainspeed predict ... --json | head`): not an error of ours. Python's
        # own advice: point stdout at devnull so that the exit's flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
