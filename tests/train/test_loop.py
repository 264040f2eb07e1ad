"""The training loop on real tiny policies and a real LeRobot v3 dataset."""

import json

import pytest
import torch

from train.checkpoint import last_step
from train.loop import Trainer, run_training
from train.metrics import read_metrics
from train.presets import get_preset

TINY = dict(
    dataset="tiny_tasks", batch_size=2, log_every=1, val_every=2, val_batches=1, checkpoint_every=100,
    warmup_steps=0, lr_schedule="constant",
)  # fmt: skip
SMALL_ADAPTER = {
    "smolvla-lora_sp": {"r": 8},
    "smolvla-lora128": {"r": 8, "lora_alpha": 8},
    "smolvla-adalora": {"init_r": 8, "target_r": 4, "tinit": 0, "tfinal": 0, "deltaT": 1},
    "smolvla-lora_moe": {"r": 8, "num_experts": 2},
    "smolvla-full": {},
    "pi0-lora_sp": {"r": 8},
    "smolvla-vla_gse": {"r": 8, "num_experts": 4},
}


def tiny_config(preset, backbone_cache, **overrides):
    fields = {**TINY, "backbone_cache": str(backbone_cache), "adapter": SMALL_ADAPTER[preset], **overrides}
    return get_preset(preset, **fields)


def datasets_dir(train_workspace):
    return train_workspace / "datasets"


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(SMALL_ADAPTER))
def test_each_strategy_trains_and_writes_a_complete_run(preset, backbone_cache, train_workspace, tmp_path):
    cfg = tiny_config(preset, backbone_cache, steps=2)
    result = run_training(cfg, tmp_path / "run", datasets_dir(train_workspace))
    assert result.state == "completed" and result.step == 2
    assert 0 < result.trainable_percent <= 100
    train = read_metrics(tmp_path / "run", kind="train")
    assert [r["step"] for r in train] == [1, 2]
    for record in train:
        assert record["loss"] > 0 and record["lr"] > 0 and record["samples_per_s"] > 0 and "eta_s" in record
    if cfg.strategy == "lora_sp":
        assert {"aux/spectral", "aux/balance", "aux/z"} <= set(train[-1])
        # the paper's three groups each report an active rank within the bank
        for group in ("vision", "language", "action"):
            assert 0 < train[-1][f"active_rank/{group}"] <= 8
        final = [
            e
            for e in read_metrics(tmp_path / "run", kind="event")
            if e["event"] == "active_rank_distribution"
        ]
        assert len(final[0]["histogram"]["action"]) == 9 and sum(final[0]["histogram"]["action"]) > 0
    val = read_metrics(tmp_path / "run", kind="val")
    assert set(val[-1]) >= {"val/open the pot", "val/press the button", "val/mean"}
    saved = tmp_path / "run" / "checkpoints" / "000002" / "pretrained_model"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["preset"] == preset
    assert (saved / "config.json").exists() and (saved / "policy_preprocessor.json").exists()
    if cfg.strategy == "full":
        assert (saved / "model.safetensors").exists()
    else:  # adapter-only: a small file beside the policy config, no copy of the base weights
        assert not (saved / "model.safetensors").exists()
        assert (saved / "adapter_model.safetensors").stat().st_size < 5_000_000


@pytest.mark.slow
def test_overfitting_one_batch_lowers_lora_sp_loss_substantially(backbone_cache, train_workspace, tmp_path):
    # LoRA-SP on the action expert and heads (the VLM frozen, so the check stays fast)
    cfg = tiny_config(
        "smolvla-lora_sp", backbone_cache, steps=30, lr=1e-2, grad_clip=0.0, targets="smolvla:action",
        policy={"train_expert_only": True},
    )  # fmt: skip
    trainer = Trainer(cfg, tmp_path / "run", datasets_dir(train_workspace))
    batch = next(trainer.batches())

    def step_on_fixed_batch():
        torch.manual_seed(0)  # the same flow-matching noise and time every step
        return trainer.train_step([dict(batch)])["task_loss"]

    losses = [step_on_fixed_batch()]
    while len(losses) < cfg.steps and min(losses) > 0.3 * losses[0]:
        losses.append(step_on_fixed_batch())
    assert min(losses) < 0.3 * losses[0], losses


@pytest.mark.slow
def test_resume_continues_exactly(backbone_cache, train_workspace, tmp_path):
    # 2N steps in one go == N steps, stop, resume, N steps (N = 2; lr schedule over the 2N)
    # state noise draws from the checkpointed generator too: resuming must redraw the same noise
    cfg = tiny_config(
        "smolvla-lora_sp", backbone_cache, steps=4, lr_schedule="cosine", warmup_steps=1, state_noise=0.2
    )
    data = datasets_dir(train_workspace)
    straight = run_training(cfg, tmp_path / "straight", data)
    first = run_training(cfg, tmp_path / "split", data, stop_at_step=2)
    assert first.state == "stopped" and first.step == 2
    second = run_training(cfg, tmp_path / "split", data, resume=True)
    assert straight.state == second.state == "completed" and second.step == 4
    # the stop's save was for continuing: once continued, both runs keep the same checkpoints
    for run in ("straight", "split"):
        assert [p.name for p in (tmp_path / run / "checkpoints").iterdir() if p.is_dir()] == ["000004"]

    def losses(run):
        return [
            (r["step"], r["loss"], r.get("aux/spectral")) for r in read_metrics(tmp_path / run, kind="train")
        ]

    a, b = losses("straight"), losses("split")
    assert [s for s, *_ in a] == [s for s, *_ in b] == [1, 2, 3, 4]  # nothing logged twice
    for (_, la, sa), (_, lb, sb) in zip(a, b, strict=True):
        assert la == pytest.approx(lb, rel=1e-4, abs=1e-6)
        assert sa == pytest.approx(sb, rel=1e-4, abs=1e-6)
    val_a = read_metrics(tmp_path / "straight", kind="val")[-1]
    val_b = read_metrics(tmp_path / "split", kind="val")[-1]
    assert val_a["val/mean"] == pytest.approx(val_b["val/mean"], rel=1e-4)


@pytest.mark.slow
def test_a_kill_loses_at_most_the_time_since_the_last_resume_point(backbone_cache, train_workspace, tmp_path):
    # resume_every_s near 0: a resume point at every logging step (log_every=1) between the
    # cadence's checkpoints (every 2 steps); killed after step 3, resumed from its resume point
    cfg = tiny_config("smolvla-lora_sp", backbone_cache, steps=5, checkpoint_every=2, resume_every_s=1e-9)
    run, data = tmp_path / "run", datasets_dir(train_workspace)
    on_disk = []  # before each step: the step a run killed there would resume from

    class Killed(Exception):
        pass

    def look() -> bool:
        on_disk.append(last_step(run))
        if len(on_disk) == 4:  # killed before step 4: no final save
            raise Killed
        return False

    with pytest.raises(Killed):
        run_training(cfg, run, data, should_stop=look)
    assert on_disk == [0, 1, 2, 3]
    resumed = run_training(cfg, run, data, resume=True)
    assert resumed.state == "completed" and resumed.step == 5
    assert [r["step"] for r in read_metrics(run, kind="train")] == [1, 2, 3, 4, 5]
    # each resume point went once a newer checkpoint was in place: the cadence's and the final stay
    kept = sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir())
    assert kept == ["000002", "000004", "000005"]
    saved = [e for e in read_metrics(run, kind="event") if e["event"] == "checkpoint"]
    assert [(e["step"], e["resume_point"]) for e in saved] == [
        (1, True), (2, False), (3, True), (4, False), (5, False)
    ]  # fmt: skip


@pytest.mark.slow
def test_a_stop_on_a_cadence_checkpoint_keeps_it(backbone_cache, train_workspace, tmp_path):
    # stopped right after the cadence's step 2, then stopped again at once after resuming:
    # neither stop re-saves step 2 as a resume point, which a later save would delete
    cfg = tiny_config("smolvla-lora_sp", backbone_cache, steps=4, checkpoint_every=2)
    run, data = tmp_path / "run", datasets_dir(train_workspace)
    assert run_training(cfg, run, data, stop_at_step=2).state == "stopped"
    again = run_training(cfg, run, data, resume=True, stop_at_step=2)
    assert again.step == 2 and again.checkpoint == run / "checkpoints" / "000002"  # the one on disk
    assert run_training(cfg, run, data, resume=True).state == "completed"
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir()) == ["000002", "000004"]


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_what_to_do_and_keeps_its_last_checkpoint(
    backbone_cache, train_workspace, tmp_path, monkeypatch
):
    from train.checkpoint import DiskFull

    cfg = tiny_config("smolvla-lora_sp", backbone_cache, steps=3, checkpoint_every=1)
    run, data = tmp_path / "run", datasets_dir(train_workspace)
    real_save = torch.save

    def save_onto_a_full_disk(obj, file, *args, **kwargs):  # /dev/full: every write fails with ENOSPC
        with open("/dev/full", "wb") as full:
            return real_save(obj, full, *args, **kwargs)

    def fill_the_disk_after_step_1() -> bool:
        if last_step(run) == 1:
            monkeypatch.setattr(torch, "save", save_onto_a_full_disk)
        return False

    with pytest.raises(DiskFull) as error:
        run_training(cfg, run, data, should_stop=fill_the_disk_after_step_1)
    message = str(error.value)
    assert "free space, then resume it" in message and "from step 1, which is intact" in message
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "000001",
        "last",
    ]  # no half-written one
    monkeypatch.setattr(torch, "save", real_save)
    assert run_training(cfg, run, data, resume=True).step == 3


@pytest.mark.slow
def test_the_frame_cache_changes_speed_not_numbers(backbone_cache, train_workspace, tmp_path):
    data = datasets_dir(train_workspace)
    logged = {}
    for gb in (0.0, 1.0):  # decoded per sample, then read from the cache
        cfg = tiny_config("smolvla-lora_sp", backbone_cache, steps=3, val_every=3, frame_cache_gb=gb)
        run_training(cfg, tmp_path / f"run-{gb}", data)
        metrics = read_metrics(tmp_path / f"run-{gb}")
        logged[gb] = [
            (r["step"], r.get("loss"), r.get("val/mean")) for r in metrics if r["kind"] in ("train", "val")
        ]
    assert logged[0.0] == logged[1.0] and len(logged[0.0]) == 4
    assert any((data / ".frame_cache" / "tiny_tasks").glob("*/done.json"))


@pytest.mark.slow
def test_loader_workers_change_speed_not_numbers(backbone_cache, train_workspace, tmp_path):
    """Frames decoded in two worker processes (as on a GPU by default) give the batches the
    main process decodes: the same losses, step by step, and a resume point counts them alike."""
    data = datasets_dir(train_workspace)
    logged = {}
    for workers in (0, 2):
        cfg = tiny_config(
            "smolvla-lora_sp", backbone_cache, steps=3, val_every=3, frame_cache_gb=0.0, num_workers=workers
        )
        run_training(cfg, tmp_path / f"run-{workers}", data)
        metrics = read_metrics(tmp_path / f"run-{workers}")
        logged[workers] = [
            (r["step"], r.get("loss"), r.get("val/mean")) for r in metrics if r["kind"] in ("train", "val")
        ]
    assert logged[0] == logged[2] and len(logged[0]) == 4
    started = next(r for r in read_metrics(tmp_path / "run-2") if r.get("event") == "started")
    assert started["loader_workers"] == 2


def test_loader_workers_by_device():
    from train.data import loader_workers

    assert loader_workers(None, "cpu", 1, 16) == 0  # decoding would take the training's cores
    assert loader_workers(None, "cuda", 1, 16) == 4  # lerobot-train's default
    assert loader_workers(None, "cuda", 8, 16) == 1  # a core left per training process
    assert loader_workers(None, "cuda", 2, 2) == 0
    assert loader_workers(3, "cpu", 1, 2) == 3  # asked for: as asked
    with pytest.raises(ValueError, match="num_workers must be 0 or more"):
        get_preset("smolvla-full", num_workers=-1)


@pytest.mark.slow
def test_trained_policy_loads_with_lerobot_plus_adapters_and_acts(backbone_cache, train_workspace, tmp_path):
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.datasets import LeRobotDataset

    from train.policy_io import load_trained_policy

    cfg = tiny_config("smolvla-lora_sp", backbone_cache, steps=1)
    run_training(cfg, tmp_path / "run", datasets_dir(train_workspace))
    saved = tmp_path / "run" / "checkpoints" / "000001" / "pretrained_model"
    assert PreTrainedConfig.from_pretrained(str(saved)).type == "smolvla"  # lerobot reads the config
    policy, pre, post = load_trained_policy(tmp_path / "run")
    assert any("LoraSP" in type(m).__name__ for m in policy.modules())
    dataset = LeRobotDataset("local/tiny_tasks", root=datasets_dir(train_workspace) / "tiny_tasks")
    item = dataset[0]
    observation = {k: v for k, v in item.items() if k.startswith("observation.")}
    observation["task"] = item["task"]
    torch.manual_seed(0)  # the flow's initial noise
    with torch.no_grad():
        action = post(policy.select_action(pre(observation)))
    assert action.shape == (1, 7) and torch.isfinite(action).all()
    # on the CPU LoRA-SP acts on its "auto" inference path: the dense path's numbers, less work
    lora_sp_layers = [m for m in policy.modules() if "LoraSP" in type(m).__name__]
    assert {m.inference_path for m in lora_sp_layers} == {"auto"}
    for layer in lora_sp_layers:
        layer.inference_path = "dense"
    policy.reset()
    torch.manual_seed(0)
    with torch.no_grad():
        dense_action = post(policy.select_action(pre(observation)))
    torch.testing.assert_close(action, dense_action, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_load_of_last_survives_the_trainer_pruning_it(
    backbone_cache, train_workspace, tmp_path, monkeypatch
):
    """An evaluation that loads a running run's `last` while the trainer deletes that resume
    point (a newer checkpoint landed) loads the newer one; a named checkpoint that vanishes
    is an error."""
    import shutil

    import train.backbones
    from train.policy_io import load_trained_policy

    run = tmp_path / "run"
    run_training(
        tiny_config("smolvla-lora128", backbone_cache, steps=2, checkpoint_every=1),
        run,
        datasets_dir(train_workspace),
    )
    checkpoints = run / "checkpoints"
    (checkpoints / "last").write_text("000001")
    real_load_config, loaded = train.backbones.load_policy_config, []

    def trainer_prunes_during_the_load(policy_dir):
        if not loaded:  # what save_checkpoint does when step 2 lands: re-point `last`, then prune
            (checkpoints / "last").write_text("000002")
            shutil.rmtree(checkpoints / "000001")
        loaded.append(policy_dir.parent.name)
        return real_load_config(policy_dir)

    monkeypatch.setattr(train.backbones, "load_policy_config", trainer_prunes_during_the_load)
    policy, _, _ = load_trained_policy(run)
    assert loaded == ["000001", "000002"] and policy is not None
    shutil.copytree(checkpoints / "000002", checkpoints / "000001")
    loaded.clear()
    with pytest.raises(Exception):  # noqa: B017 - a named checkpoint is never swapped for another
        load_trained_policy(run, checkpoint=1)
    assert loaded == ["000001"]


def test_lora_sp_gathers_kept_vectors_on_the_cpu_only():
    """On a GPU the gather's host read of the kept set would stall the queue every layer."""
    from train.policy_io import lora_sp_inference_path

    assert lora_sp_inference_path("cpu") == "auto"
    assert lora_sp_inference_path("cuda") == lora_sp_inference_path("cuda:1") == "dense"
    assert lora_sp_inference_path(torch.device("cuda", 0)) == "dense"


def test_missing_dataset_and_unknown_task_are_clear_errors(backbone_cache, train_workspace, tmp_path):
    from train.data import DatasetError

    cfg = tiny_config("smolvla-lora_sp", backbone_cache, steps=1, dataset="nope")
    with pytest.raises(DatasetError, match="no LeRobot dataset 'nope'.*tiny_tasks"):
        Trainer(cfg, tmp_path / "run", datasets_dir(train_workspace))
    cfg = tiny_config("smolvla-lora_sp", backbone_cache, steps=1, tasks=["fly away"])
    with pytest.raises(DatasetError, match="not in the dataset.*open the pot"):
        Trainer(cfg, tmp_path / "run", datasets_dir(train_workspace))


def test_state_noise_perturbs_the_training_state_only_by_its_std():
    from types import SimpleNamespace

    from train.config import TrainConfig

    with pytest.raises(ValueError, match="state_noise"):
        TrainConfig(state_noise=-0.1)
    clean = {"observation.state": torch.zeros(4096, 7), "action": torch.ones(4096, 50, 7)}
    one_process = SimpleNamespace(world=1)
    noisy = Trainer._augment(
        SimpleNamespace(config=TrainConfig(state_noise=0.25), ranks=one_process), dict(clean)
    )
    assert noisy["observation.state"].std().item() == pytest.approx(0.25, rel=0.02)
    assert torch.equal(noisy["action"], clean["action"])  # targets untouched
    same = Trainer._augment(SimpleNamespace(config=TrainConfig(), ranks=one_process), dict(clean))
    assert torch.equal(same["observation.state"], clean["observation.state"])


def test_spread_indices_take_frames_from_the_whole_episode():
    from train.data import spread_indices

    assert spread_indices(100, 5) == [0, 25, 50, 74, 99]
    assert spread_indices(3, 8) == [0, 1, 2]  # fewer frames than asked: every one, once
    assert spread_indices(10, 1) == [5]


@pytest.mark.slow
def test_validation_reads_frames_from_the_end_of_held_out_episodes_too(
    backbone_cache, train_workspace, tmp_path, monkeypatch
):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    cfg = tiny_config("smolvla-full", backbone_cache, steps=1, val_batches=2)
    trainer = Trainer(cfg, tmp_path / "run", datasets_dir(train_workspace))
    read: dict[int, list[int]] = {}
    original = LeRobotDataset.__getitem__

    def recording_getitem(dataset, index):
        read.setdefault(id(dataset), []).append(index)
        return original(dataset, index)

    monkeypatch.setattr(LeRobotDataset, "__getitem__", recording_getitem)
    losses = trainer.validate()
    assert set(losses) == set(trainer.val_sets)
    for dataset in trainer.val_sets.values():
        # 2 batches of 2 frames: the first and the last frame of the held-out episode among them
        assert len(read[id(dataset)]) == 4
        assert {0, len(dataset) - 1} <= set(read[id(dataset)])


def test_a_validation_ceiling_must_be_a_positive_loss():
    from train.config import TrainConfig

    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="max_val_loss must be above 0"):
            TrainConfig(max_val_loss=bad)
    assert TrainConfig(max_val_loss=0.2).max_val_loss == 0.2 and TrainConfig().max_val_loss is None


@pytest.mark.slow
@pytest.mark.parametrize("ceiling", [None, 0.5])
def test_a_loss_that_is_not_finite_ends_the_run_as_unstable_with_or_without_a_ceiling(
    ceiling, backbone_cache, train_workspace, tmp_path, monkeypatch
):
    # A NaN validation mean once passed `mean > ceiling` (a comparison with NaN is false)
    # and the run trained on as NaN for 2,500 steps (Run 24, lora_sp-no_z).
    monkeypatch.setattr(Trainer, "validate", lambda self: {"press the button": float("nan")})
    cfg = tiny_config("smolvla-lora_sp", backbone_cache, steps=6, max_val_loss=ceiling)
    result = run_training(cfg, tmp_path / "run", datasets_dir(train_workspace))
    assert (result.state, result.step) == ("unstable", 2)  # val_every=2
    assert result.checkpoint is None and last_step(tmp_path / "run") == 0  # NaN weights are not kept


@pytest.mark.slow
def test_a_training_loss_that_turns_nan_ends_the_run_at_once(
    backbone_cache, train_workspace, tmp_path, monkeypatch
):
    real_step = Trainer.train_step

    def step_going_nan(self, micro_batches):
        terms = real_step(self, micro_batches)
        return {**terms, "loss": torch.tensor(float("nan"))} if self.step >= 3 else terms

    monkeypatch.setattr(Trainer, "train_step", step_going_nan)
    cfg = tiny_config("smolvla-lora_sp", backbone_cache, steps=8, val_every=100)
    result = run_training(cfg, tmp_path / "run", datasets_dir(train_workspace))
    assert (result.state, result.step) == ("unstable", 3)  # log_every=1: not one step more
    assert result.checkpoint is None  # nothing saved before it, and the NaN step is not saved
    assert [r["step"] for r in read_metrics(tmp_path / "run", kind="train")] == [1, 2, 3]
