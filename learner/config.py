"""The learner's config sections: PPO (the update rule) and the learner process (device, threads, queue).

Each field is documented where it is declared; cluster/config.py composes these sections into the
run's Config and loads them strictly from YAML (the `ppo:` and `learner:` sections).
"""

from __future__ import annotations

from dataclasses import dataclass, field

AUTOCAST_MODES = ("off", "bf16", "auto")


@dataclass(frozen=True)
class PPOConfig:
    lr: float = 3e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount per decision of the acting agent (turn-based games count own moves only)."""
    gae_lambda: float = 0.95
    """GAE lambda (OpenAI Five: 0.95)."""
    clip: float = 0.2
    """PPO ratio clip (OpenAI Five: 0.2)."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value-loss weight (OpenAI Five: 0.25-1.0)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    epochs: int = 4
    """Passes over each batch."""
    minibatch_size: int = 512
    """Samples per gradient step. Where the learner's arithmetic is the limit (a CPU learner), a
    smaller minibatch buys more gradient steps for a little more time per sample: on connect
    four, 2 cores, 128 took ~1.35x 512's time per sample, made 4x the steps and was stronger at
    equal wall time (docs/results.md). A GPU wants large ones."""
    batch_size: int = 2048
    """Samples gathered per learner iteration (one iteration = one new learner version)."""
    max_policy_lag: int = 4
    """Samples produced more than this many versions ago are dropped (and counted). ANCHORS: keep lag 0-1."""
    normalize_advantages: bool = True
    """Normalise advantages per minibatch."""
    schedule_versions: int = 0
    """Learner versions over which lr and ent_coef move linearly to lr x lr_end_factor and
    ent_coef x ent_end_factor (and gamma to gamma_end, if set), then stay (0: constant). Keyed to
    the learner version, which a checkpoint restores, so a resumed run continues the schedule
    where it stopped."""
    lr_end_factor: float = 1.0
    """Learning rate at the schedule's end, as a fraction of lr (1: no decay)."""
    ent_end_factor: float = 1.0
    """Entropy weight at the schedule's end, as a fraction of ent_coef (OpenAI Five: 0.01 -> 0.001, i.e. 0.1)."""
    gamma_end: float = 0.0
    """Discount at the schedule's end: gamma moves linearly to it over schedule_versions, as
    OpenAI Five raised its horizon during training (a short horizon teaches taking wins and
    blocks early; a long one credits the opening). 0: gamma stays constant. On connect four,
    0.9 -> 0.99 over a 20-minute run took fewer wins and blocks (docs/results.md)."""
    augment: str = "none"
    """none, mirror or dihedral: each sample, in each epoch, is seen in a random orientation of the
    board (its observation, legal mask and action transformed alike; model.symmetry's groups). The
    symmetric data costs no arithmetic, where a symmetric network (model.symmetry) doubles it.
    Needs a board game whose actions are cells or columns, a feed-forward policy, and
    model.symmetry none."""
    target_kl: float = 0.0
    """Stop an update's remaining minibatches once one has moved the policy past 1.5 x this
    (approx. KL from the acting policy); 0: always run every epoch."""


@dataclass(frozen=True)
class LearnerConfig:
    device: str = "auto"
    """auto (CUDA when Ray granted a GPU / one is visible), cpu, or cuda."""
    num_gpus: float = 0.0
    """GPUs the learner actor asks Ray for. 0 on a CPU-only machine."""
    num_cpus: float = 1.0
    """CPUs the learner actor asks Ray for."""
    torch_threads: int = 1
    """torch intra-op threads. 1 avoids 25-40x slowdowns from oversubscription on shared cores."""
    autocast: str = "off"
    """off, bf16, or auto: the network's forward pass (and so its backward) in bfloat16
    autocast, the PPO loss and the weights in float32. On a GPU with bf16 (A100, H100) the
    convolutions and matrix products run on its bf16 units; on a CPU with AVX512-BF16 or AMX too
    (connect four's forward and backward: 1.4x faster on an AVX512-BF16 EPYC core, and 1.6x the
    env steps of a 5-minute run). auto: bf16 where the learner's device computes it natively (a
    CUDA card that supports it; a CPU whose oneDNN has bf16 kernels), else off; elsewhere bf16
    is emulated and slower than float32. Off by default: bf16 keeps 8 bits of mantissa, so the
    loss matches float32's only to about 1% (tests/test_learner_speed.py), and learning is no
    longer the float32 run's bit for bit: configs/connect_four.yaml turns it on with its
    strength measured (docs/results.md, "Connect four"); check strength before relying on it
    elsewhere."""
    max_restarts: int = 3
    """Times the driver starts a new learner after the learner dies (its process killed, its node
    lost), each from the newest checkpoint, numbering its versions past every published one; the
    tries wait 1, 2, 4, ... (at most 30) seconds apart. Once they are used up the run stops with the
    `--resume` command to type. 0: the first death stops the run. Counted per restart_window_s."""
    restart_window_s: float = 3600.0
    """max_restarts counts the restarts within any window of this many seconds (a sliding window), not
    over the whole run: a run of weeks on preemptible nodes goes on; one that dies over and over stops."""
    call_timeout_s: float = 300.0
    """The driver waits at most this long for any answer of the learner (progress, checkpoint, stop,
    weights); a learner that does not answer (wedged) stops the run with a message instead of hanging it."""
    resources: dict = field(default_factory=dict)
    """Custom Ray resources the learner asks for besides its CPUs and GPUs, to place it on chosen
    nodes: {learner_node: 1} puts it only on nodes started with `ray start
    --resources='{"learner_node": 1}'`. A learner whose node goes away is started again from the
    newest checkpoint (max_restarts) on another node that offers the resource, or waits for one.
    Empty: anywhere with the CPUs and GPUs it asks for (docs/cluster.md, "Placement")."""
    publish_every: int = 1
    """Publish weights to the parameter store every this many learner versions."""
    queue_segments: int = 0
    """Bound of the learner's inbound queue, in trajectory segments; a full queue pushes back on
    the actors. 0: one batch (ceil(ppo.batch_size / rollout.segment_length)), so actors fill the
    next batch while the learner trains on the current one, then wait instead of running ahead
    and producing samples that go stale."""
    queue_bytes: int = 0
    """Bound of the learner's inbound queue in bytes of encoded payloads, besides queue_segments:
    what a payload weighs is measured, not declared by the actor that sends it. 0: twice the bytes
    of queue_segments segments of this game, at least 64 MiB (cluster/remote/inbox.py)."""
