"""The learner at the hardware's limit (issue 25): the benchmark's bare loop is the learner's
arithmetic, the update's device paths (the non-finite guard, bf16 autocast, CUDA) keep its
results, and the prepared GPU check runs its CPU part."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from actors.games import load_game
from cluster.config import load_config
from learner.learner import Learner
from learner.phases import PHASES, PhaseTimer

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("learner_speed", ROOT / "benchmarks" / "learner_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench()
SMALL = ["ppo.batch_size=128", "ppo.minibatch_size=64", "ppo.epochs=2", "model.channels=8"]


def _setup(overrides=(), device="cpu", autocast="off", seed=0):
    cfg = load_config(ROOT / "configs" / "connect_four.yaml", [*SMALL, *overrides])
    spec = load_game(cfg.game.name)[1]
    learner = Learner(spec, cfg.model, cfg.ppo, replace(cfg.learner, device=device, autocast=autocast), seed=seed)
    segments = bench.synthetic_segments(spec.obs_shape, spec.num_actions, cfg.ppo.batch_size, cfg.rollout.segment_length, seed)
    return cfg, learner, segments


def _update(learner: Learner, segments) -> dict[str, float]:
    learner.add(bench.stamped(segments, learner.version))
    return learner.update()


@pytest.mark.parametrize("augment", ["none", "mirror"])
def test_the_bare_loop_is_the_learners_arithmetic_bit_for_bit(augment):
    cfg, learner, segments = _setup([f"ppo.augment={augment}"])
    net = bench.PolicyNet(learner.spec.obs_shape, learner.spec.num_actions, cfg.model, learner.spec.head)
    net.load_state_dict(learner.model.state_dict())
    bare = bench.BareLoop(net, segments, cfg.ppo, torch.device("cpu"), seed=0)
    before = learner.weights()
    for _ in range(2):
        _update(learner, segments)
        bare.update()
    after = learner.weights()
    assert any(not np.array_equal(before[k], after[k]) for k in after)  # it learned something
    for k, v in net.state_dict().items():
        assert np.array_equal(v.numpy(), after[k]), k  # and the bare loop learned exactly that


def test_the_phase_timer_sees_every_phase_and_changes_nothing():
    _, timed, segments = _setup()
    _, plain, _ = _setup()
    timed.timer = PhaseTimer(timed.device)
    m_timed, m_plain = _update(timed, segments), _update(plain, segments)
    assert set(PHASES) <= set(timed.timer.seconds) and all(timed.timer.seconds[p] > 0 for p in PHASES)
    assert m_timed == m_plain
    assert all(np.array_equal(v, plain.weights()[k]) for k, v in timed.weights().items())


def test_weights_are_a_copy_that_later_updates_do_not_change():
    _, learner, segments = _setup()
    w = learner.weights()
    assert list(w) == list(learner.model.state_dict())
    assert all(np.array_equal(v, learner.model.state_dict()[k].numpy()) for k, v in w.items())
    snapshot = {k: v.copy() for k, v in w.items()}
    _update(learner, segments)
    assert all(np.array_equal(v, snapshot[k]) for k, v in w.items())


def _on_device_guard(learner: Learner) -> Learner:
    """The CUDA learner's way of skipping a non-finite step (fused Adam's found_inf), on CPU."""
    learner._guard_on_device = True
    learner._fit_optimizer()
    return learner


def test_a_nonfinite_minibatch_changes_nothing_when_the_device_guards_the_step():
    _, learner, segments = _setup(["ppo.minibatch_size=128"])
    _on_device_guard(learner)
    # Finite rewards whose losses overflow (a segment with NaN rewards is refused when it is made).
    poisoned = [replace(segments[0], rewards=np.full(len(segments[0]), 1e38, np.float32)), *segments[1:]]
    before = learner.weights()
    m = _update(learner, poisoned)
    assert m["losses/grad_steps"] == 0 and m["losses/nonfinite_skipped"] == 2 and "losses/total" not in m
    assert all(np.array_equal(v, learner.weights()[k]) for k, v in before.items())
    assert all(float(st["step"]) == 0 and not st["exp_avg"].any() for st in learner.opt.state.values())
    assert learner.stats.nonfinite_skipped == 2
    # ...and a finite batch then trains as the host-guarded learner does (to fused Adam's rounding).
    _, host, _ = _setup(["ppo.minibatch_size=128"])
    _update(host, poisoned)
    m_dev, m_host = _update(learner, segments), _update(host, segments)
    assert m_dev["losses/grad_steps"] == m_host["losses/grad_steps"] == 2
    for k, v in host.weights().items():
        np.testing.assert_allclose(learner.weights()[k], v, rtol=1e-5, atol=1e-7, err_msg=k)


def test_a_checkpoint_moves_between_the_two_ways_of_guarding_steps():
    _, host, segments = _setup()
    _update(host, segments)
    _, dev, _ = _setup()
    _on_device_guard(dev).load_state_dict(host.state_dict())
    assert all(g["fused"] and not g["foreach"] for g in dev.opt.param_groups)
    _update(dev, segments)  # fused Adam with the host learner's step counts
    back = _setup()[1]
    back.load_state_dict(dev.state_dict())
    assert all(g["foreach"] and not g["fused"] for g in back.opt.param_groups)
    _update(back, segments)
    assert back.version == 3 and all(float(st["step"]) == 3 * 2 * 2 for st in back.opt.state.values())  # updates x epochs x minibatches


def test_bf16_autocast_keeps_the_loss_within_tolerance():
    one_step = ["ppo.epochs=1", "ppo.minibatch_size=128"]  # the loss of the same weights on both sides
    _, fp32, segments = _setup(one_step)
    _, bf16, _ = _setup(one_step, autocast="bf16")
    m32, m16 = _update(fp32, segments), _update(bf16, segments)
    for k in ("total", "policy", "value", "entropy"):
        assert m16[f"losses/{k}"] == pytest.approx(m32[f"losses/{k}"], rel=2e-2, abs=2e-3), k
    assert all(v.dtype == np.float32 for v in bf16.weights().values())


def test_autocast_auto_is_bf16_exactly_where_the_device_computes_it_natively(monkeypatch):
    import learner.learner as learner_mod

    cpu = torch.device("cpu")
    assert not learner_mod.autocast_enabled("off", cpu) and learner_mod.autocast_enabled("bf16", cpu)
    for native in (True, False):
        monkeypatch.setattr(learner_mod, "native_bf16", lambda device, native=native: native)
        assert learner_mod.autocast_enabled("auto", cpu) is native
        _, auto, segments = _setup(autocast="auto")
        assert auto.bf16 is native
        with auto._autocast():  # what the update's forward pass runs under
            assert torch.is_autocast_enabled("cpu") is native
    with pytest.raises(ValueError, match="learner.autocast 'fp16' is unknown"):
        _setup(autocast="fp16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/device_check.sh runs this on one)")
def test_an_update_on_cuda_matches_the_cpu_update():
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # compare float32 with float32
    try:
        _, cpu, segments = _setup()
        _, gpu, _ = _setup(device="cuda")
        assert gpu.device.type == "cuda"
        start = cpu.weights()
        gpu.load_weights(start)
        m_cpu, m_gpu = _update(cpu, segments), _update(gpu, segments)
        for k in ("total", "policy", "value", "entropy", "approx_kl", "grad_steps"):
            assert m_gpu[f"losses/{k}"] == pytest.approx(m_cpu[f"losses/{k}"], rel=1e-3, abs=1e-5), k
        w_cpu, w_gpu = cpu.weights(), gpu.weights()
        moved = np.sqrt(sum(float(((w_cpu[k] - start[k]) ** 2).sum()) for k in start))
        apart = np.sqrt(sum(float(((w_gpu[k] - w_cpu[k]) ** 2).sum()) for k in start))
        assert moved > 0 and apart < 0.05 * moved  # the same step, to float rounding
        gpu.load_state_dict(cpu.state_dict())  # a CPU checkpoint continues on the GPU
        assert np.isfinite(_update(gpu, segments)["losses/total"])
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def test_the_arithmetic_count_is_the_networks_multiply_adds():
    """The GFLOP/s the benchmark prints rests on this count: every convolution and linear layer of
    a small conv network, worked out by hand (a 6x7 board, 2 planes in, 8 channels, one block)."""
    from learner.arch import ModelConfig
    from learner.model import PolicyNet

    model = ModelConfig(kind="conv", channels=8, blocks=1, policy_planes=2, value_planes=1, hidden_sizes=(16,))
    net = PolicyNet((6, 7, 2), 7, model)
    cells = 6 * 7
    stem, block = cells * 8 * 2 * 9, 2 * cells * 8 * 8 * 9
    policy = cells * 2 * 8 + 7 * 2 * cells  # 1x1 convolution, then the linear layer over its planes
    value = cells * 1 * 8 + 16 * cells + 1 * 16  # 1x1 convolution, then the MLP 42 -> 16 -> 1
    assert bench.multiply_adds(net, torch.device("cpu")) == stem + block + policy + value
    assert not net._forward_hooks and all(not m._forward_hooks for m in net.modules())  # hooks removed


@pytest.mark.slow
def test_the_device_check_dry_run_runs_the_cpu_benchmark_and_checks_the_training_config():
    out = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--dry-run"],
        capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ratio: " in out.stdout and "config ok" in out.stdout
    assert "would run: " in out.stdout and "--set learner.num_gpus=1" in out.stdout
