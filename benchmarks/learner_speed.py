"""The learner's update against a bare torch loop doing the same arithmetic, in one run.

    python benchmarks/learner_speed.py --config configs/connect_four.yaml
    python benchmarks/learner_speed.py --config configs/connect_four.yaml --device cuda

Both sides train the config's model (model section) with its PPO settings (batch, minibatch,
epochs, learning rate, clip, coefficients, ppo.augment's orientations; Adam as the learner builds it) on the same synthetic
segments of the config's game: its observation shape and action count, random legal-action masks,
games ending every ~21 decisions. The learner side is what a training run pays per version:
Learner.add + Learner.update + the weights it publishes (Learner.weights, serialised as the
parameter store does; the Redis write is left out). The bare side is the hardware's limit for
the same maths: the batch's tensors built once on the device, advantages precomputed, and per
minibatch only index, advantage normalisation, forward, the PPO loss, backward, the gradient-norm
clip and the optimizer step (the same number of steps, on permutations drawn as the learner draws
them), nothing read back to the host. The two alternate `--rounds` times so that a shared
machine's noise falls on both; each prints samples/s (batch samples per second of updates,
each sample used `epochs` times), then where the learner's time goes, from extra updates timed
phase by phase (the timer synchronizes CUDA at each boundary, so those are not in the rates).
The last line is `ratio: X`, the learner's samples/s over the bare loop's (wall clock); the line
before it is the same ratio in CPU time, which a shared machine's other processes do not disturb
(comparable only at the same --threads). The bare loop is bit for bit the learner's arithmetic on
CPU (tests/test_learner_speed.py), so the gap between them is the learner's own overhead.
Both sides follow the config's learner.autocast as resolved for the device (configs/connect_four.yaml:
auto, so bf16 on a CPU with bf16 kernels); `--set learner.autocast=off` measures float32.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, as benchmarks/strength.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from actors.games import load_game  # noqa: E402
from cluster.config import load_config  # noqa: E402
from learner.augment import Orientations  # noqa: E402
from learner.learner import Learner  # noqa: E402
from learner.model import PolicyNet  # noqa: E402
from learner.phases import PHASES, PhaseTimer  # noqa: E402
from learner.ppo import gae_segments, linear_schedule, minibatch_slices  # noqa: E402
from learner.segment import Segment  # noqa: E402
from learner.wire import encode_weights  # noqa: E402


def synthetic_segments(obs_shape, num_actions: int, batch_size: int, length: int, seed: int) -> list[Segment]:
    """Segments enough for one batch: board-like 0/1 observations, random legal masks (at least
    one legal move), a legal action per step scored as if uniform, games ending every ~21 steps."""
    rng = np.random.default_rng(seed)
    obs_dim = math.prod(obs_shape)
    out = []
    for i in range(-(-batch_size // length)):
        masks = rng.random((length, num_actions)) < 0.8
        masks[np.arange(length), rng.integers(0, num_actions, length)] = True
        actions = np.where(masks, rng.random((length, num_actions)), -1.0).argmax(1).astype(np.int64)
        dones = rng.random(length) < 1 / 21
        rewards = np.where(dones, rng.choice([-1.0, 1.0], length), 0.0).astype(np.float32)
        out.append(
            Segment(
                actor_id=0,
                segment_id=i,
                obs=(rng.random((length, obs_dim)) < 0.3).astype(np.float32),
                masks=masks,
                actions=actions,
                logp=-np.log(masks.sum(1)).astype(np.float32),
                values=rng.normal(0.0, 0.5, length).astype(np.float32),
                rewards=rewards,
                dones=dones,
                versions=np.zeros(length, np.int64),
                bootstrap_value=0.0 if dones[-1] else float(rng.normal(0.0, 0.5)),
            )
        )
    return out


def stamped(segments: list[Segment], version: int) -> list[Segment]:
    """The same segments, produced by `version` (so the learner never drops them as stale)."""
    return [replace(s, versions=np.full(len(s), version, np.int64)) for s in segments]


class BareLoop:
    """The update's arithmetic and nothing else, on tensors already on the device."""

    def __init__(self, net: PolicyNet, segments: list[Segment], ppo, device: torch.device, seed: int, bf16: bool = False) -> None:
        self.net, self.cfg, self.device, self.bf16 = net, ppo, device, bf16
        self.opt = torch.optim.Adam(net.parameters(), lr=ppo.lr, betas=(0.9, 0.999), eps=1e-5)
        adv, ret = gae_segments(
            [s.rewards for s in segments], [s.values for s in segments], [s.dones for s in segments],
            [s.bootstrap_value for s in segments], ppo.gamma, ppo.gae_lambda,
        )
        cat = lambda name: torch.from_numpy(np.concatenate([getattr(s, name) for s in segments])).to(device)  # noqa: E731
        self.obs, self.masks, self.actions, self.old_logp = cat("obs"), cat("masks"), cat("actions"), cat("logp")
        self.adv, self.ret = torch.from_numpy(adv).to(device), torch.from_numpy(ret).to(device)
        self.n = len(adv)
        self.pieces = minibatch_slices(self.n, ppo.minibatch_size)
        self.rng = np.random.default_rng(seed)  # the learner's permutations come from the same seed
        # ppo.augment: the same orientations, drawn from the same rng after each permutation.
        self.turned = Orientations.build(ppo.augment, net.model_cfg, net.obs_shape, net.num_actions, net.head, device)
        self.version = 0

    def update(self) -> None:
        c = self.cfg
        lr = linear_schedule(c.lr, c.lr_end_factor, self.version, c.schedule_versions)
        ent_coef = linear_schedule(c.ent_coef, c.ent_end_factor, self.version, c.schedule_versions)
        for group in self.opt.param_groups:
            group["lr"] = lr
        for _ in range(c.epochs):
            order = torch.from_numpy(self.rng.permutation(self.n))
            turns = None if self.turned is None else torch.from_numpy(self.rng.integers(len(self.turned), size=self.n))
            if self.device.type == "cuda":  # an asynchronous copy: a plain one would wait for the GPU
                order = order.pin_memory().to(self.device, non_blocking=True)
                turns = None if turns is None else turns.pin_memory().to(self.device, non_blocking=True)
            for piece in self.pieces:
                idx = order[piece]
                adv = self.adv[idx]
                if c.normalize_advantages and len(idx) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                obs, masks, actions = self.obs[idx], self.masks[idx], self.actions[idx]
                if turns is not None:
                    obs, masks, actions = self.turned.turn(obs, masks, actions, turns[idx])
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):  # as the learner's
                    logits, values = self.net(obs, masks)
                logits, values = logits.float(), values.float()  # no-ops in float32
                logp_all = torch.log_softmax(logits, dim=-1)
                log_ratio = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1) - self.old_logp[idx]
                ratio = log_ratio.exp()
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - c.clip, 1.0 + c.clip)).mean()
                value_loss = 0.5 * (values - self.ret[idx]).pow(2).mean()
                # The entropy from a log-softmax of its own, as ppo_loss computes it: sharing the one
                # above would sum the gradients in another order, and so round them differently.
                logp_ent = torch.log_softmax(logits, dim=-1)
                entropy = (-(logp_ent.exp() * logp_ent).sum(-1)).mean()
                total = policy_loss + c.vf_coef * value_loss - ent_coef * entropy
                self.opt.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
                self.opt.step()
        self.version += 1


def try_on_both(args: argparse.Namespace, *nets: PolicyNet) -> str:
    """Apply --channels-last / --compile to both sides' networks (experiments on the arithmetic,
    which the learner does not do in a run: measured, they did not pay, docs/results.md); what was
    applied, for the header line."""
    done = ""
    if args.channels_last:
        for net in nets:
            net.to(memory_format=torch.channels_last)  # in place: the parameters keep their identity
        done += ", channels-last weights"
    if args.compile:
        for net in nets:
            net.forward = torch.compile(net.forward)  # the module stays itself: state_dict keys unchanged
        done += ", torch.compile"
    return done


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def learner_update(learner: Learner, segments: list[Segment]) -> None:
    """One version as a run pays for it: take the samples, update, serialise the weights."""
    learner.add(stamped(segments, learner.version))
    learner.update()
    encode_weights(learner.weights(), learner.version)


def run(args: argparse.Namespace) -> float:
    cfg = load_config(args.config, args.set)
    spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native, cfg.game.sides, cfg.game.roles)[1]
    if spec.continuous or cfg.model.kind == "lstm":
        raise SystemExit("learner_speed.py measures categorical feed-forward models (model.kind mlp or conv) only")
    threads = args.threads if args.threads > 0 else cfg.learner.torch_threads
    lcfg = replace(cfg.learner, device=args.device, torch_threads=threads)
    ppo = cfg.ppo
    learner = Learner(spec, cfg.model, ppo, lcfg, seed=args.seed)  # sets torch's thread count
    device = learner.device
    net = PolicyNet(spec.obs_shape, spec.num_actions, cfg.model, spec.head).to(device)
    net.load_state_dict(learner.model.state_dict())
    segments = synthetic_segments(spec.obs_shape, spec.num_actions, ppo.batch_size, cfg.rollout.segment_length, args.seed)
    bare = BareLoop(net, segments, ppo, device, args.seed, bf16=learner.bf16)
    n = sum(len(s) for s in segments)
    tried = try_on_both(args, learner.model, net)
    print(
        f"learner_speed: {spec.name}, model {cfg.model.kind}, batch {n} ({len(segments)} segments of "
        f"{cfg.rollout.segment_length}), minibatch {ppo.minibatch_size}, epochs {ppo.epochs}, "
        f"device {device}{', bf16 autocast (both sides)' if learner.bf16 else ''}, torch threads {torch.get_num_threads()}, torch {torch.__version__}{tried}"
    )
    for _ in range(args.warmup):
        learner_update(learner, segments)
        bare.update()
    sync(device)
    spent = {"learner": 0.0, "bare": 0.0}
    cpu = {"learner": 0.0, "bare": 0.0}
    for r in range(args.rounds):
        rates = []
        for side, fn in (("learner", lambda: learner_update(learner, segments)), ("bare", bare.update)):
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.updates):
                fn()
            sync(device)
            dt = time.perf_counter() - t0
            spent[side] += dt
            cpu[side] += time.process_time() - c0
            rates.append(f"{side} {args.updates * n / dt:,.0f}")
        print(f"round {r + 1}: samples/s " + "  ".join(rates))
    updates = args.rounds * args.updates
    for side in ("learner", "bare"):
        print(
            f"{side + ':':8} {updates * n / spent[side]:9,.0f} samples/s ({spent[side] / updates * 1000:.1f} ms per update; "
            f"{updates * n / cpu[side]:,.0f} samples per CPU second)"
        )
    macs = multiply_adds(net, device)
    flops = 3 * 2 * macs * ppo.epochs * updates * n / spent["bare"]
    print(
        f"bare loop arithmetic: about {flops / 1e9:.1f} GFLOP/s ({macs:,} multiply-adds a sample per forward pass, "
        "in convolutions and linear layers; a training pass counted as 3 forwards)"
    )
    print_phases(learner, segments, args.updates)
    # On a shared machine the wall clock also counts other processes' turns; CPU time does not
    # (it counts this process's threads, so it is comparable only at the same --threads).
    print(f"ratio (CPU time): {cpu['bare'] / cpu['learner']:.3f}")
    ratio = spent["bare"] / spent["learner"]
    print(f"ratio: {ratio:.3f}")
    return ratio


def multiply_adds(net: PolicyNet, device: torch.device) -> int:
    """Multiply-adds of one sample's forward pass, as torch's FLOP counter counts them (convolutions
    and matrix products, 2 FLOPs each; the elementwise rest is small): the arithmetic that the
    hardware's peak FLOP rate bounds."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros((1, net.obs_dim), device=device), torch.ones((1, net.num_actions), dtype=torch.bool, device=device))
    return counter.get_total_flops() // 2


def print_phases(learner: Learner, segments: list[Segment], updates: int) -> None:
    """Where the learner's time goes, from `updates` updates timed phase by phase."""
    learner.timer = timer = PhaseTimer(learner.device)
    other = 0.0
    for _ in range(updates):
        t0 = time.perf_counter()
        learner.add(stamped(segments, learner.version))
        learner.update()
        other += time.perf_counter() - t0
        with timer("publish"):
            encode_weights(learner.weights(), learner.version)
    learner.timer = None
    secs = dict(timer.seconds)
    other -= sum(v for k, v in secs.items() if k != "publish")
    secs["other"] = max(other, 0.0)
    whole = sum(secs.values())
    order = [*PHASES, "publish", "other"]
    print("learner time: " + "  ".join(f"{k} {secs.get(k, 0.0) / whole:.1%}" for k in order) + f"  ({whole / updates * 1000:.1f} ms per update)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/connect_four.yaml")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the config's learner.torch_threads)")
    p.add_argument("--rounds", type=int, default=3, help="alternations of learner and bare loop")
    p.add_argument("--updates", type=int, default=3, help="updates per side per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed updates of each side first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels-last", action="store_true", help="experiment: convolution weights channels-last, on both sides")
    p.add_argument("--compile", action="store_true", help="experiment: torch.compile the network's forward, on both sides (the warmup compiles)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA GPU is visible to torch here (torch.cuda.is_available() is False)")
    run(args)


if __name__ == "__main__":
    main()
