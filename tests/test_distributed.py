"""Distributed runs on real processes with gloo on CPU: parity with one process (DDP, ZeRO-1,
FSDP2 stages 2 and 3, accumulation), every launcher, hostfiles over SSH, and failures."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, run_cli
from distributed_helpers import free_port, require_program, start_sshd

CONFIG = str(REPO / "configs/cifar10/quick_cpu.py")
# Global batch 64 in every layout; 4 optimizer steps; weights compared after them.
PARITY = ["IMG_SIZE=32", "PATCH_SIZE=8", "HIDDEN_SIZE=32", "DEPTH=2", "NUM_HEADS=2",
          "MLP_RATIO=2", "TOTAL_BATCH_SIZE=64", "BATCH_SIZE=None", "NUM_EPOCHS=1",
          "LIMIT_TRAIN_BATCHES=4", "LIMIT_EVAL_BATCHES=2", "LOG_EVERY=1", "WARMUP_EPOCHS=0",
          "tensorboard=False", "report=False", "dist_timeout=120"]


def sets(values) -> list[str]:
    return [a for kv in values for a in ("--set", kv)]


def train_args(run_dir: Path, cifar_dir: Path, extra=()) -> list[str]:
    return ["train", CONFIG, "--data", str(cifar_dir), "--run-dir", str(run_dir),
            "--no-progress", "--device", "cpu", *sets([*PARITY, *extra])]


def train_losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text()
                                   .splitlines()) if r["split"] == "train"]


def assert_same_model(a: Path, b: Path, atol=2e-5) -> None:
    x, y = load_file(str(a / "model_final.safetensors")), load_file(str(b / "model_final.safetensors"))
    assert x.keys() == y.keys()
    for k in x:
        if k.endswith("attn.k.bias"):
            # Softmax ignores a bias added to every key, so its true gradient is 0 and Adam
            # turns the rounding noise left in it into unit-size steps: no layout can match.
            continue
        torch.testing.assert_close(x[k], y[k], rtol=1e-4, atol=atol, msg=k)
    assert train_losses(a) == pytest.approx(train_losses(b), abs=1e-5)


@pytest.fixture(scope="module")
def single(cifar_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("single") / "run"
    result = run_cli(*train_args(run_dir, cifar_dir))
    assert result.returncode == 0, result.stderr
    return run_dir


# Two processes show each property (sharded state, no-sync accumulation, global norms): on 2
# cores a third and fourth process only slow the run. The resume test runs on 4. LARS over
# DDP is tests/test_tensor_parallel.py's ddp_zero1_lars case (4 processes, to 1e-5).
@pytest.mark.slow
@pytest.mark.parametrize("nproc, extra", [
    (2, []),                                               # DDP
    (2, ["zero.stage=1"]),                                 # DDP + ZeroRedundancyOptimizer
    (2, ["zero.stage=2", "OPTIMIZER='lamb'"]),             # FSDP2, global trust ratios
    (2, ["zero.stage=3", "gradient_accumulation=2"]),      # FSDP2 + no-sync accumulation
    # Worker processes decode and augment, Mixup/CutMix on top: the same global batches.
    (2, ["gradient_accumulation=2", "data.pipeline='dataloader'", "data.num_workers=1",
         "MIXUP_ALPHA=0.4", "CUTMIX_ALPHA=1.0"]),
])
def test_data_parallel_matches_one_process(nproc, extra, single, cifar_dir, tmp_path):
    run_dir = tmp_path / "dp"
    reference = single
    recipe = [e for e in extra if not e.startswith(("zero.", "gradient_accumulation"))]
    if recipe:  # the same recipe (optimizer, data pipeline) on one process
        reference = tmp_path / "one"
        assert run_cli(*train_args(reference, cifar_dir, recipe)).returncode == 0
    result = run_cli("run", "--nproc-per-node", str(nproc), *train_args(run_dir, cifar_dir, extra))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"data {nproc}" in result.stdout
    assert_same_model(run_dir, reference)


def _spawn(env_per_rank: list[dict], args: list[str]) -> list[subprocess.Popen]:
    procs = []
    for extra_env in env_per_rank:
        env = {**os.environ, **extra_env, "PYTHONPATH": str(REPO)}
        procs.append(subprocess.Popen([sys.executable, "-m", "vitscale", *args], cwd=REPO,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    return procs


def _finish(procs, timeout=300):
    outs = [p.communicate(timeout=timeout) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
    return outs


@pytest.mark.slow
def test_ranks_on_a_cold_cache_decode_once_and_train(cifar_folder, tmp_path):
    """`vitscale run` forks its ranks from one forkserver (distributed/runner.py). On a cold
    cache one rank decodes the images in DataLoader worker processes of its own (started as in
    a spawned rank, not through the forkserver) while the other waits for the entry; both
    train, and the cache holds each split once."""
    env = {**os.environ, "VITSCALE_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "vitscale", "run", "--nproc-per-node", "2",
                             *train_args(run_dir, cifar_folder, ["data.num_workers=2"])],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "data 2" in result.stdout and "Traceback" not in result.stderr
    cached = list((tmp_path / "cache").glob("compact-*.pt"))
    assert len(cached) == 2, cached  # the training and the evaluation images, once each
    assert len(train_losses(run_dir)) == 3  # 200 images: 3 steps of 64


@pytest.mark.slow
def test_explicit_flags_start_a_matching_two_process_run(single, cifar_dir, tmp_path):
    """(SLURM and OpenMPI: test_documented_launch_commands_run.)"""
    port = free_port()
    run_dir = tmp_path / "explicit"
    args = train_args(run_dir, cifar_dir)
    rank_args = [["--rank", str(r), "--world-size", "2", "--local-rank", str(r), "--host",
                  "127.0.0.1", "--port", str(port), "--backend", "gloo"] for r in range(2)]
    (out0, err0), (out1, err1) = _finish([_spawn([{}], [*args, *extra])[0]
                                          for extra in rank_args])
    assert "explicit launch of 2" in out0
    # Each message once: rank 1 says nothing, rank 0 logs with its rank and prints each line once.
    assert out1 == "" and " rank1 " not in err1, out1 + err1
    assert out0.count("done: best") == out0.count("explicit launch of 2") == 1
    assert_same_model(run_dir, single)


@pytest.mark.slow
def test_hostfile_runs_one_command_on_two_hosts_over_ssh(single, cifar_dir, tmp_path):
    require_program("pgrep", "procps")
    sshd, ssh_port, options = start_sshd(tmp_path / "ssh")
    try:
        hostfile = tmp_path / "hosts"
        hostfile.write_text("# two hosts on one machine\n127.0.0.1 slots=1\n127.0.0.2\n")
        run_dir = tmp_path / "multi"
        result = run_cli("run", "--nproc-per-node", "1", "--hostfile", str(hostfile),
                         "--master-port", str(free_port()), "--ssh-port", str(ssh_port),
                         *sum((["--ssh-option", o] for o in options), []),
                         *train_args(run_dir, cifar_dir))
        assert result.returncode == 0, result.stdout + result.stderr
        for node, host in enumerate(("127.0.0.1", "127.0.0.2")):  # each host's runner log
            line = rf"^\[{host}\] .* rank0 INFO .*runner: node {node} of 2"
            assert re.search(line, result.stdout, re.M), result.stdout
        assert "[127.0.0.1] vitscale 0.1.0" in result.stdout  # rank 0's output, prefixed
        assert_same_model(run_dir, single)

        # Ctrl-C on the launcher stops the processes on every host.
        slow = train_args(tmp_path / "stopped", cifar_dir, ["LIMIT_TRAIN_BATCHES=None",
                                                             "NUM_EPOCHS=50"])
        proc = subprocess.Popen([sys.executable, "-m", "vitscale", "run", "--nproc-per-node",
                                 "1", "--hostfile", str(hostfile), "--master-port",
                                 str(free_port()), "--ssh-port", str(ssh_port),
                                 *sum((["--ssh-option", o] for o in options), []), *slow],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.time() + 120
        while not (tmp_path / "stopped" / "metrics.jsonl").is_file():
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and "stopping every host" in err
        time.sleep(2)
        left = subprocess.run(["pgrep", "-f", str(tmp_path / "stopped")], capture_output=True,
                              text=True)
        assert left.stdout.strip() == ""
    finally:
        sshd.terminate()
        sshd.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0])
def test_a_killed_rank_stops_the_others_with_its_name(victim, cifar_dir, tmp_path):
    port, timeout = free_port(), 10
    args = train_args(tmp_path / "run", cifar_dir, [
        "LIMIT_TRAIN_BATCHES=None", "NUM_EPOCHS=20", f"dist_timeout={timeout}"])
    procs = [_spawn([{}], [*args, "--rank", str(r), "--world-size", "2", "--host", "127.0.0.1",
                           "--port", str(port)])[0] for r in range(2)]
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 180
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 3):
        assert time.time() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.1)
    procs[victim].send_signal(signal.SIGKILL)
    killed = time.time()
    survivor = procs[1 - victim]
    _, err = survivor.communicate(timeout=180)
    elapsed = time.time() - killed
    assert survivor.returncode != 0
    assert f"rank {victim}" in err, err
    assert elapsed < timeout + 30  # bounded: the heartbeat timeout plus polling slack


@pytest.mark.slow
def test_impossible_layouts_fail_before_waiting_and_a_missing_rank_times_out(cifar_dir,
                                                                          tmp_path):
    start = time.time()
    result = run_cli(*train_args(tmp_path / "a", cifar_dir, ["parallel.tensor.mode='1d'",
                                                             "parallel.tensor.size=2"]),
                     "--rank", "0", "--world-size", "3", "--host", "127.0.0.1", "--port", "1")
    assert result.returncode == 2 and "world size 3 is not divisible" in result.stderr
    assert time.time() - start < 60
    # Rank 0 of 2 started alone: it gives up after dist_timeout with a clear line.
    result = run_cli(*train_args(tmp_path / "b", cifar_dir, ["dist_timeout=5"]), "--rank", "0",
                     "--world-size", "2", "--host", "127.0.0.1", "--port", str(free_port()))
    assert result.returncode == 2 and "could not join the 2-process group" in result.stderr
    assert not (tmp_path / "b").exists()


def test_launch_detection_from_the_environment():
    from vitscale.distributed.launch import LaunchError, detect_launch, first_slurm_host
    assert first_slurm_host("gpu[03-05,9],login1") == "gpu03"
    assert first_slurm_host("node7") == "node7"
    assert first_slurm_host("r[1-2]-n[01-04],x9") == "r1-n01"  # two brackets in one name
    info = detect_launch(env={"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
                              "SLURM_JOB_NODELIST": "n[1-2]"}, cuda=False)
    assert (info.launcher, info.rank, info.world_size, info.local_rank, info.master_addr,
            info.master_port, info.backend) == ("slurm", 3, 8, 1, "n1", 29500, "gloo")
    info = detect_launch(env={"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
                              "MASTER_ADDR": "a", "MASTER_PORT": "1234",
                              "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, cuda=True)
    assert (info.launcher, info.master_port, info.backend) == ("torchrun", 1234, "nccl")
    assert detect_launch(env={}, cuda=False).launcher == "single"
    with pytest.raises(LaunchError, match="needs the master's address"):
        detect_launch(env={"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"}, cuda=False)
    with pytest.raises(LaunchError, match=r"\$SLURM_PROCID is not set"):
        detect_launch(launcher="slurm", env={}, cuda=False)
    with pytest.raises(LaunchError, match="rank 2 is not in 0..1"):
        detect_launch(rank=2, world_size=2, host="h", env={}, cuda=False)


def test_hostfile_parsing(tmp_path):
    from vitscale.distributed.launch import LaunchError
    from vitscale.distributed.runner import read_hostfile
    f = tmp_path / "hosts"
    f.write_text("a slots=8\n# comment\nb\nc  # trailing\n")
    assert read_hostfile(f) == ["a", "b", "c"]
    assert read_hostfile(f, include="c,a") == ["a", "c"]
    assert read_hostfile(f, exclude="b") == ["a", "c"]
    f.write_text("a\na\n")
    with pytest.raises(LaunchError, match="listed twice"):
        read_hostfile(f)


@pytest.mark.slow
def test_a_two_process_fsdp_run_resumes_on_one_process_then_on_four(cifar_dir, tmp_path):
    """Checkpoints reshard: 1 epoch on 2 FSDP ranks, the 2nd on 1 process, the 3rd on 4 DDP
    ranks ends where 3 epochs on one process end (data order does not depend on layout)."""
    # A constant LR: raising NUM_EPOCHS on resume would otherwise stretch the schedule.
    const = ["LR_SCHEDULE='constant'"]
    whole = tmp_path / "whole"
    assert run_cli(*train_args(whole, cifar_dir, [*const, "NUM_EPOCHS=3"])).returncode == 0
    run_dir = tmp_path / "moving"
    first = run_cli("run", "--nproc-per-node", "2",
                    *train_args(run_dir, cifar_dir, [*const, "NUM_EPOCHS=1", "zero.stage=3"]))
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_cli(*train_args(run_dir, cifar_dir, [*const, "NUM_EPOCHS=2"]))
    assert second.returncode == 0, second.stderr
    assert "resuming from" in second.stdout and "step-00000004" in second.stdout
    third = run_cli("run", "--nproc-per-node", "4",
                    *train_args(run_dir, cifar_dir, [*const, "NUM_EPOCHS=3"]))
    assert third.returncode == 0, third.stdout + third.stderr
    assert "step-00000008" in third.stdout and "data 4" in third.stdout
    assert_same_model(run_dir, whole)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 12 and summary["epochs"] == 3
    tests = [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
             if r["split"] == "test"]
    assert [r["images"] for r in tests] == [256] * 3  # every evaluation saw its batches


def _documented_command(path: Path, launcher: str) -> list[str]:
    """The vitscale arguments of the `srun`/`mpirun` line of an example launch script."""
    import shlex
    text = path.read_text().replace("\\\n", " ")
    line = next(l for l in text.splitlines() if l.strip().startswith(launcher))
    words = shlex.split(line)
    return words[words.index("vitscale") + 1:]


def _documented_args(script: str, launcher: str, run_dir: Path, cifar_dir: Path) -> list[str]:
    """The documented command with this machine's data, port and run directory, on the CPU."""
    port = free_port()
    args = [str(cifar_dir) if a == "$DATA" else "127.0.0.1" if a == "$MASTER" else
            str(port) if a == "29500" else str(run_dir) if a.startswith("runs/") else a
            for a in _documented_command(REPO / "examples" / "launch" / script, launcher)]
    # fp32: its bf16 rounds gradient sums where they are split, which parity cannot allow.
    return args + ["--no-progress", "--device", "cpu",
                   *sets([*PARITY, "MODEL='vit_lite_7_4'", "precision='fp32'"])]


@pytest.fixture(scope="module")
def documented_single(cifar_dir, tmp_path_factory) -> Path:
    """The documented commands' config and settings on one process."""
    run_dir = tmp_path_factory.mktemp("documented") / "one"
    args = _documented_args("train.sbatch", "srun", run_dir, cifar_dir)
    at = args.index("--port")  # one process: no rendezvous
    result = run_cli(*args[:at], *args[at + 2:])
    assert result.returncode == 0, result.stderr
    return run_dir


@pytest.mark.slow
@pytest.mark.parametrize("script, launcher", [("train.sbatch", "srun"), ("mpirun.sh", "mpirun")])
def test_documented_launch_commands_run(script, launcher, documented_single, cifar_dir, tmp_path):
    """Each SLURM / OpenMPI example, as srun / mpirun would start it (their environment
    variables), is a 2-process launch of that kind and ends where one process ends."""
    args = _documented_args(script, launcher, tmp_path / "run", cifar_dir)
    if launcher == "srun":  # srun sets these; the master is the first node of the job
        envs = [{"SLURM_PROCID": str(r), "SLURM_NTASKS": "2", "SLURM_LOCALID": str(r),
                 "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "localhost"} for r in range(2)]
    else:  # mpirun sets these; --host/--port name the master
        envs = [{"OMPI_COMM_WORLD_RANK": str(r), "OMPI_COMM_WORLD_SIZE": "2",
                 "OMPI_COMM_WORLD_LOCAL_RANK": str(r)} for r in range(2)]
    (out0, _), _ = _finish(_spawn(envs, args))
    kind = {"srun": "slurm", "mpirun": "openmpi"}[launcher]
    assert f"{kind} launch of 2" in out0
    assert_same_model(tmp_path / "run", documented_single)
