"""Does a policy look where the object is? Its first action chunk against the object's place.

    .venv/bin/python benchmarks/grounding.py --workspace W --run R1 --run R2 [--tasks all] [--scenes 30] [--checkpoint last]

For each task, `--scenes` sim scenes (the evaluation's seeds: `--seed` as `piper-ws eval`
takes it) differ only in where the objects are; the arm starts at the same pose in all of
them. Each run predicts its first action chunk in every scene with the same sampling noise,
and the chunk's last target is compared with the first object the arm must reach
(`reach.FIRST_TARGET`): the correlation of joint 1 (the base's turn) with the object's
bearing from the base, and of joint 2 (the shoulder) with its distance. A policy that
sees the object turns with it; one that ignores the cameras predicts the same chunk
everywhere. Prints a Markdown table.

SmolVLA runs also get a second table, one step earlier in the policy: how far apart the
scenes' image embeddings are (the vision encoder and connector, both cameras: mean pairwise
distance over mean norm), for each run and for its backbone without any adapter. An
adapter that lowers it below the backbone's washes out what tells the scenes apart. A third
table says how large each run's update is beside what the frozen layer computes: per group
(vision, language, action), the median and largest norm of the adapter's change over the
norm of the frozen layer's output, over the adapted layers' calls in one scene's first
inference.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--run", action="append", required=True, help="a run under runs/ (repeatable)")
    parser.add_argument("--checkpoint", default="last", help="each run's checkpoint (a step, or last)")
    parser.add_argument("--tasks", default="all")
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument(
        "--seed", type=int, default=7, help="base seed of the scenes, as `piper-ws eval --seed`"
    )
    parser.add_argument("--image-size", default="96x128", help="HxW the runs were trained on")
    args = parser.parse_args()

    import numpy as np
    from reach import FIRST_TARGET

    from collect.sim.env import PiperSimEnv
    from collect.sim.tasks.base import body_pos
    from collect.workspace import Workspace
    from evaluate.campaign import CampaignSpec
    from evaluate.rollout import PolicyAgent, follower_observation

    tasks = list(FIRST_TARGET) if args.tasks == "all" else args.tasks.split(",")
    runs_dir = Workspace.open(args.workspace).runs_dir
    agents = {run: PolicyAgent.from_run(runs_dir / run, checkpoint=args.checkpoint) for run in args.run}
    spec = CampaignSpec(
        name="grounding", runs=tuple(args.run), tasks=tuple(tasks), trials=args.scenes, seed=args.seed
    )
    size = tuple(int(v) for v in args.image_size.split("x"))
    print("| task | run | corr(joint 1, bearing) | joint 1 spread (rad) | corr(joint 2, distance) |")
    print("|---|---|---|---|---|")
    for task in tasks:
        env = PiperSimEnv(task=task, image_size=size)
        scenes = []
        for i in range(args.scenes):
            raw, _ = env.reset(seed=spec.seed_for(task, i))
            observation = {**follower_observation(raw), **env.camera_frames()}
            x, y, _ = body_pos(env.world, FIRST_TARGET[task])
            scenes.append((observation, np.arctan2(y, x), np.hypot(x, y)))
        bearing = np.array([s[1] for s in scenes])
        distance = np.array([s[2] for s in scenes])
        for run, agent in agents.items():
            ends = []
            for observation, _, _ in scenes:
                agent.reset(seed=0)  # the same noise in every scene: only the images differ
                for _ in range(agent.policy.config.n_action_steps):  # one inference, then its chunk served
                    target = agent.act(observation, env.task_description)
                ends.append([target["joint_1.pos"], target["joint_2.pos"]])
            j1, j2 = np.array(ends).T
            print(
                f"| {task} | {run} | {np.corrcoef(bearing, j1)[0, 1]:.2f} | {j1.std():.3f} "
                f"| {np.corrcoef(distance, j2)[0, 1]:.2f} |"
            )
        env.close()
        if all(hasattr(a.policy, "prepare_images") for a in agents.values()):
            embedding_spread(agents, [s[0] for s in scenes[:8]], env.task_description)
        update_size(agents, scenes[0][0], env.task_description)
    return 0


def update_size(agents: dict, observation: dict, instruction: str) -> None:
    """Per run and group: |W x + delta - W x| / |W x| over the adapted layers' calls (ours and peft's)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from peft.tuners.tuners_utils import BaseTunerLayer

    from train.adapters.layer import AdapterLinear
    from train.adapters.targets import detect_targets

    print("\n| run | group | update / frozen output, median | largest | layer calls |\n|---|---|---|---|---|")
    for run, agent in agents.items():
        targets, ratios, hooks = detect_targets(agent.policy), {}, []
        for name, module in agent.policy.named_modules():
            if isinstance(module, AdapterLinear):
                frozen = lambda m, x: F.linear(x, m.weight, m.bias)  # noqa: E731
            elif isinstance(module, BaseTunerLayer) and hasattr(module, "base_layer"):
                frozen = lambda m, x: m.base_layer(x)  # noqa: E731
            else:
                continue
            group = targets.group_of(name) or "other"

            def hook(m, inputs, out, group=group, frozen=frozen, ratios=ratios):
                base = frozen(m, inputs[0])
                ratios.setdefault(group, []).append(float((out - base).norm() / base.norm().clamp_min(1e-12)))

            hooks.append(module.register_forward_hook(hook))
        agent.reset(seed=0)
        with torch.inference_mode():
            agent.act(observation, instruction)
        for handle in hooks:
            handle.remove()
        agent.reset(seed=0)
        for group, values in sorted(ratios.items()):
            print(f"| {run} | {group} | {np.median(values):.3f} | {max(values):.1f} | {len(values)} |")


def embedding_spread(agents: dict, observations: list[dict], instruction: str) -> None:
    """Mean pairwise distance of the scenes' image embeddings over their mean norm, per run
    and for the first run's backbone (the same preprocessing, no adapter)."""
    import numpy as np
    import torch
    from lerobot.policies.utils import prepare_observation_for_inference

    from collect.limits import CAMERA_NAMES, MOTOR_KEYS
    from train.backbones import load_base_policy, resolve_backbone

    def spread(policy, preprocessor) -> float:
        rows = []
        for observation in observations:
            frame = {"observation.state": np.asarray([observation[k] for k in MOTOR_KEYS], dtype=np.float32)}
            frame |= {f"observation.images.{c}": observation[c] for c in CAMERA_NAMES}
            with torch.inference_mode():
                batch = preprocessor(
                    prepare_observation_for_inference(frame, torch.device("cpu"), instruction, "piper")
                )
                images, _ = policy.prepare_images(batch)
                rows.append(
                    torch.cat([policy.model.vlm_with_expert.embed_image(i).flatten() for i in images])
                )
        e = torch.stack(rows)
        return float(torch.cdist(e, e).sum() / (len(e) * (len(e) - 1)) / e.norm(dim=1).mean())

    first = next(iter(agents.values()))
    print(f"\n| run | image embeddings' spread over {len(observations)} scenes / norm |\n|---|---|")
    for run, agent in agents.items():
        print(f"| {run} | {spread(agent.policy, agent.preprocessor):.4f} |")
    backbone = first.policy.config.pretrained_path  # the backbone directory the run was trained from
    if backbone:
        base = load_base_policy(resolve_backbone(str(backbone), download=False)).eval()
        print(f"| {Path(backbone).name} (backbone, no adapter) | {spread(base, first.preprocessor):.4f} |")


if __name__ == "__main__":
    sys.exit(main())
