"""Several training processes (torchrun, gloo on CPU) compute what one process computes:
the same loss at every step for the same global batch, and a 2-process checkpoint resumes
in 1 process exactly where an uninterrupted 1-process run would be."""

import pytest
from test_jobs import wait_for_step

from train.jobs import cancel_job, start_job, wait_job
from train.metrics import read_metrics
from train.presets import get_preset

JOB_TIMEOUT = 600


def config(backbone_cache, name, **overrides):
    fields = dict(
        dataset="tiny_tasks", run_name=name, batch_size=4, steps=6, log_every=1, val_every=1000,
        checkpoint_every=1000, lr=1e-3, lr_schedule="constant", warmup_steps=0, state_noise=0.3,
        adapter={"r": 8}, backbone_cache=str(backbone_cache), device="cpu",
    )  # fmt: skip
    fields.update(overrides)
    return get_preset("smolvla-lora_sp", **fields)


def losses(run_dir):
    return {m["step"]: m["loss"] for m in read_metrics(run_dir, kind="train")}


def finished(run_dir):
    record = wait_job(run_dir, JOB_TIMEOUT)
    assert record.state == "completed", (run_dir / "train.log").read_text()[-4000:]
    return record


class Rank1Of2:
    """Rank 1 of 2, for the draw helpers (no process group needed)."""

    rank, world = 1, 2

    def rows(self, local):
        return slice(local, 2 * local)


def test_a_rank_draws_its_rows_of_the_global_batch_draw():
    import torch

    from train.distributed import global_randn_like, share_random_draws

    torch.manual_seed(3)
    whole = torch.randn(8, 5)
    torch.manual_seed(3)
    assert torch.equal(global_randn_like(torch.zeros(4, 5), Rank1Of2()), whole[4:])

    class Flow:
        def sample_noise(self, shape, device):
            return torch.randn(shape)

        def sample_time(self, bsize, device):
            return torch.rand(bsize)

    flow = Flow()
    torch.manual_seed(3)
    noise, time = torch.randn(8, 2, 3), torch.rand(8)
    share_random_draws(flow, Rank1Of2())
    torch.manual_seed(3)
    assert torch.equal(flow.sample_noise((4, 2, 3), "cpu"), noise[4:])
    assert torch.equal(flow.sample_time(4, "cpu"), time[4:])


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_two_processes_train_like_one_and_resume_in_one(backbone_cache, train_workspace, runs):
    data = train_workspace / "datasets"
    start_job(config(backbone_cache, "one"), runs, data)
    one = losses(finished(runs / "one").path)

    two = start_job(config(backbone_cache, "two", steps=4, processes=2), runs, data)
    assert two.processes == 2
    finished(runs / "two")
    log = (runs / "two" / "train.log").read_text()
    assert "torch.distributed.run" in log and "--nproc_per_node 2" in log
    two_losses = losses(runs / "two")
    assert sorted(two_losses) == [1, 2, 3, 4]  # rank 0 alone writes the metrics: one row per step
    for step, loss in two_losses.items():
        assert loss == pytest.approx(one[step], rel=1e-3), (step, two_losses, one)
    # LoRA-SP's logged active rank matches the 1-process run's (that the histograms are summed
    # over ranks is checked in test_adapters_layers: one rank's half batch has a similar mean)
    one_rank = {m["step"]: m["active_rank/mean"] for m in read_metrics(runs / "one", kind="train")}
    for m in read_metrics(runs / "two", kind="train"):
        assert m["active_rank/mean"] == pytest.approx(one_rank[m["step"]], rel=0.02), m["step"]

    start_job(None, runs, data, run_name="two", resume=True, overrides={"steps": 6, "processes": 1})
    resumed = losses(finished(runs / "two").path)
    for step in (5, 6):
        assert resumed[step] == pytest.approx(one[step], rel=1e-3), (step, resumed, one)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_canceled_two_process_run_stops_every_rank_at_one_step_and_saves_it(
    backbone_cache, train_workspace, runs
):
    start_job(config(backbone_cache, "two", steps=500, processes=2), runs, train_workspace / "datasets")
    wait_for_step(runs / "two", 2)
    # the workers see the cancel file (no signal reaches them): they stop together and rank 0 saves
    record = cancel_job(runs / "two", wait_s=JOB_TIMEOUT)
    assert record.state == "canceled", (runs / "two" / "train.log").read_text()[-4000:]
    assert 2 <= record.step < 500
    assert int((runs / "two" / "checkpoints" / "last").read_text()) == record.step
    assert read_metrics(runs / "two", kind="event")[-1]["event"] == "canceled"
