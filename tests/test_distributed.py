"""adapt under torchrun on the CPU (gloo, 2 ranks) against one process: the same per-step losses
and pseudo-labels, rank 0 alone writes, a SIGKILLed job resumes, a failing rank ends the job.

The sources are ResNet-18s trained for a few epochs at 64 px (at 48 px the DECISION candidate's l_pl
differed by 1.1e-4; MobileNet V2 and V3 sources, their dropout off in adaptation, did not match one
process: V3's pseudo-labels after epoch 1 differed on 10 of 24 images). PyTorch's BatchNorm kernel (one
process) and the global-batch BatchNorm of two ranks (the same statistics, from all-reduced sums)
round differently in float32; ill-conditioned gradients amplify that: untrained sources at 32 px
(~1e-2 after two steps), and the paper's squared-difference L_d, whose gradients are thousands
of times the other terms' (up to ~3e-4 here). SOCKET is therefore compared with L_d as the
per-channel KL divergence (--bn-distance kl), at λ_TI = λ_d = 0.1 (at 0.5
the Frobenius L_TI moved one image's pseudo-label across a cluster boundary after epoch 1: rounding,
amplified) and at lr 0.003: at the default 0.01
the third step differed by up to 3.8e-4 once SOCKET trained on four fifths of the TI pairs (a
composed-BatchNorm one-process run differed from 2 ranks by 2e-5 there: rounding, amplified).
In float64 one 2-rank step equals one process's to 8.6e-14 and a per-rank approximation differs
by 2.1 (benchmarks/distributed_exactness.py, docs/benchmarks.md)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TI, assert_same_weights, write_class_folders

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
TWO = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "socket_edge"]
pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="this torch build has no gloo backend")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("ddp")
    paths = {
        "rgb": write_class_folders(root / "rgb", "rgb", per_class=8),
        "depth": write_class_folders(root / "depth", "depth", per_class=8, seed=3),
        "ti_rgb": write_class_folders(root / "ti_rgb", "rgb", per_class=6, classes=TI, seed=5),
        "ti_depth": write_class_folders(root / "ti_depth", "depth", per_class=6, classes=TI, seed=5),
    }
    from socket_edge.cli import main

    for name, seed in (("a", 0), ("b", 1)):  # in this process: a process of its own costs seconds of imports
        paths[name] = root / f"{name}.pt"
        assert main(["train-source", "--data", str(paths["rgb"]), "--arch", "resnet18", "--weights", "none",
                     "--out", str(paths[name]), "--epochs", "6", "--img-size", "64", "--batch-size", "8",
                     "--seed", str(seed), "-q"]) == 0
    return paths


def argv(data: dict, out: Path, method: str = "socket", epochs: int = 1, *more: str) -> list[str]:
    args = ["adapt", "-q", "--source", str(data["a"]), "--source", str(data["b"]), "--target", str(data["depth"]),
            "--modality", "depth", "--method", method, "--epochs", str(epochs), "--batch-size", "8",
            "--img-size", "64", "--lr", "0.003", "--eval-data", str(data["depth"]), "--out", str(out), *more]
    if method == "socket":
        args += ["--ti-source", str(data["ti_rgb"]), "--ti-target", str(data["ti_depth"]), "--bn-distance", "kl",
                 "--lambda-ti", "0.1", "--lambda-d", "0.1"]
    return args


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun starts its workers in sessions of their own)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found += children
        todo += children
    return found


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same_run(one: Path, two: Path, terms: set[str]) -> None:
    """Two run folders (one process, two ranks) hold the same per-step losses, to rounding, and the same
    pseudo-labels and accuracies."""
    steps_one, steps_two = lines(one / "steps.jsonl"), lines(two / "steps.jsonl")
    assert len(steps_one) == len(steps_two) == 3  # 24 frames, a global batch of 8
    for a, b in zip(steps_one, steps_two):
        assert set(a) == set(b) == {"epoch", "step", "loss", *terms}
        # the loss is a difference of terms of order 1 (L_ent − L_div + …) that can nearly cancel: its
        # rounding is that of the terms (0.028756 against 0.02876 once, on an AMD EPYC)
        scale = max(abs(a[t]) for t in terms)
        for key in terms | {"loss"}:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-4 * scale), (one, a["step"], key)
    metrics_one, metrics_two = lines(one / "metrics.jsonl"), lines(two / "metrics.jsonl")
    assert [m["pseudo_labels"] for m in metrics_one] == [m["pseudo_labels"] for m in metrics_two], one
    assert [m["accuracy"] for m in metrics_one] == [m["accuracy"] for m in metrics_two], one


MA_TERMS = {"l_ent", "l_div", "l_pl"}
SOCKET_TERMS = MA_TERMS | {"l_d", "l_ti"}


def one_process(args: list[str], capsys: pytest.CaptureFixture) -> str:
    """`socket-edge …` in this process with one torch thread, as OMP_NUM_THREADS=1 gives the ranks (a process of its
    own costs seconds of imports); its stdout."""
    from socket_edge.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(args)
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    return out


@pytest.mark.timeout(600)
def test_two_ranks_give_the_one_process_runs_and_rank_zero_alone_merges_repeats(data, tmp_path, capsys):
    """SOCKET with every TI pair, `--repeats 2`: each repeat (an adaptation as --method socket --seed S runs it) has
    one process's per-step losses and pseudo-labels under two ranks; rank 0 alone merges and writes one model.
    DECISION and SOCKET with a TI hold-out are compared in the --select auto test below."""
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    one_process(argv(data, one, "socket", 1, "--repeats", "2"), capsys)
    done = subprocess.run(TWO + argv(data, two, "socket", 1, "--repeats", "2"), env=ENV, capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1 and done.stdout.count("repeat seed-1: running") == 1  # rank 0 alone
    for seed in (0, 1):
        runs = [tmp_path / f"{name}.pt.repeats" / f"seed-{seed}.pt-run" for name in ("one", "two")]
        assert_same_run(*runs, SOCKET_TERMS)
        # rank 1 wrote nothing (atomic.py raises on another rank's write): the same files as one process
        assert sorted(p.name for p in runs[1].iterdir()) == sorted(p.name for p in runs[0].iterdir())
    merged = {path.stem: torch.load(path, weights_only=True) for path in (one, two)}
    assert len(merged["two"]["members"]) == 4
    assert merged["two"]["provenance"]["metrics"]["accuracy"] == merged["one"]["provenance"]["metrics"]["accuracy"]


@pytest.mark.timeout(600)
def test_a_killed_two_rank_job_resumes_to_the_same_weights(data, tmp_path):
    """SHOT's terms on two sources (no TI pairs: 21 s less than SOCKET); SOCKET's own state resumes in test_adapt.py."""
    straight, resumed = tmp_path / "straight.pt", tmp_path / "resumed.pt"
    subprocess.run(TWO + argv(data, straight, "shot", 2), env=ENV, check=True, capture_output=True, timeout=300)
    job = subprocess.Popen(TWO + argv(data, resumed, "shot", 2), env=ENV, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "resumed.pt-run" / "checkpoint.pt"
    deadline = time.time() + 240
    while time.time() < deadline and job.poll() is None:
        if checkpoint.exists():  # epoch 1 saved (written whole or not at all)
            break
        time.sleep(0.02)
    assert job.poll() is None, "the job ended before it could be killed"
    for pid in [job.pid, *descendants(job.pid)]:  # torchrun and both ranks, as when the machine goes down
        os.kill(pid, signal.SIGKILL)
    job.wait()
    assert not resumed.exists() and checkpoint.exists()
    done = subprocess.run(TWO + argv(data, resumed, "shot", 2, "--resume"), env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming" in done.stdout
    assert_same_weights(straight, resumed)
    steps = lines(tmp_path / "resumed.pt-run" / "steps.jsonl")
    assert [(s["epoch"], s["step"]) for s in steps] == [(e, i) for e in (1, 2) for i in (1, 2, 3)]


@pytest.mark.timeout(600)
def test_select_auto_under_two_ranks_keeps_the_one_process_choice(data, tmp_path, capsys):
    """`adapt --select auto` under torchrun: every candidate runs on both ranks, rank 0 alone says
    so and writes, and each candidate's losses and pseudo-labels (DECISION, SOCKET with a TI
    hold-out, with the input adapter), its scores (validators, accuracy on --eval-data, which ranks
    here) and the winner are one process's."""
    from socket_edge.adapt.select import scores
    from socket_edge.models import artifact

    def select(out: Path) -> list[str]:
        args = argv(data, out, "socket") + ["--select", "auto"]
        del args[args.index("--method"):args.index("--method") + 2]
        return args

    one = one_process(select(tmp_path / "one.pt"), capsys)
    two = subprocess.run(TWO + select(tmp_path / "two.pt"), env=ENV, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    for name in ("base", "socket", "socket-adapter"):
        assert two.stdout.count(f"candidate {name}: running into") == 1
    kept = [line for line in two.stdout.splitlines() if line.startswith("kept ")]
    assert kept == [line for line in one.splitlines() if line.startswith("kept ")] and len(kept) == 1
    assert two.stdout.count("wrote ") == 1
    winner = kept[0].split()[1].rstrip(":")
    assert (tmp_path / "two.pt").read_bytes() == (tmp_path / "two.pt.candidates" / f"{winner}.pt").read_bytes()
    for name in ("base", "socket", "socket-adapter"):
        a, b = (scores(artifact.read(tmp_path / f"{run}.pt.candidates" / f"{name}.pt")["provenance"]["metrics"])
                for run in ("one", "two"))
        assert set(a) == set(b) and all(b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-4) for k in a), name
        assert_same_run(tmp_path / "one.pt.candidates" / f"{name}.pt-run",
                        tmp_path / "two.pt.candidates" / f"{name}.pt-run",
                        MA_TERMS if name == "base" else SOCKET_TERMS)


@pytest.mark.timeout(300)
def test_a_failure_ends_every_rank_with_one_line(data, tmp_path):
    broken = tmp_path / "target"
    write_class_folders(broken, "depth", per_class=4, seed=7)
    (broken / "blob" / "0_corrupt.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "x.pt"
    args = argv(data, out, "shot")
    args[args.index("--target") + 1] = str(broken)
    started = time.time()
    done = subprocess.run(TWO + args, env=ENV, capture_output=True, text=True, timeout=240)
    assert done.returncode != 0 and time.time() - started < 120
    ours = [line for line in done.stderr.splitlines() if line.startswith("socket-edge: error")]
    assert len(ours) == 1 and "0_corrupt.png" in ours[0], done.stderr[-3000:]
    assert not out.exists()
    # a loss that is not a number: every rank meets it, rank 0 alone says so
    done = subprocess.run(TWO + argv(data, out, "shot", 1, "--lr", "1e30"), env=ENV, capture_output=True, text=True,
                          timeout=240)
    ours = [line for line in done.stderr.splitlines() if line.startswith("socket-edge: error")]
    assert done.returncode != 0 and len(ours) == 1 and "nan" in ours[0].lower(), done.stderr[-3000:]
    assert not out.exists()


def test_only_rank_zero_writes_outputs_and_the_batch_must_split(tmp_path, monkeypatch):
    from socket_edge import atomic
    from socket_edge.errors import UsageError
    from socket_edge.training import distributed

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(RuntimeError, match="rank 1 of a torchrun job tried to write .*only rank 0 writes"):
        atomic.write_text(tmp_path / "out.json", "{}")
    assert not any(tmp_path.iterdir())
    with atomic.replacing(tmp_path / "frames.npy", any_rank=True) as tmp:  # a machine-local cache may
        tmp.write_bytes(b"x")
    assert (tmp_path / "frames.npy").read_bytes() == b"x"
    assert distributed.global_batch(30, 100) == 30 and distributed.global_batch(64, 9) == 9
    with pytest.raises(UsageError, match="the batch of 32 does not split over 3 processes; pass a --batch-size "
                                         "divisible by 3"):
        distributed.global_batch(32, 100)
    assert distributed.take_share(torch.arange(9)).tolist() == [1, 4, 7]
