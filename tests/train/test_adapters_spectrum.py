"""Spectral analysis of a fine-tune: known-rank updates give known k; the CLI prints and plots."""

import pytest
import torch
from safetensors.torch import save_file

from app.cli import main
from train.adapters.spectrum import analyse, read_weights

PREFIX = "model.vlm_with_expert."


def low_rank_update(d_out, d_in, singular_values, seed):
    """An update with exactly these singular values (orthonormal factors)."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(d_out, len(singular_values), generator=generator))
    v, _ = torch.linalg.qr(torch.randn(d_in, len(singular_values), generator=generator))
    return u @ torch.diag(torch.tensor(singular_values)) @ v.T


@pytest.fixture
def checkpoints(tmp_path):
    """A SmolVLA-named base and a tuned copy whose updates have chosen spectra."""
    names = {
        PREFIX + "vlm.model.vision_model.encoder.layers.0.mlp.fc1": ([4.0, 2.0, 1.0, 1.0], (48, 32)),
        PREFIX + "vlm.model.text_model.layers.0.self_attn.q_proj": ([3.0], (32, 32)),
        PREFIX + "lm_expert.layers.0.mlp.down_proj": ([1.0] * 9, (32, 64)),
    }
    generator = torch.Generator().manual_seed(0)
    base, tuned = {}, {}
    for i, (name, (sv, shape)) in enumerate(names.items()):
        base[name + ".weight"] = torch.randn(*shape, generator=generator)
        tuned[name + ".weight"] = base[name + ".weight"] + low_rank_update(*shape, sv, seed=i)
    base[PREFIX + "vlm.model.text_model.embed_tokens.weight"] = torch.zeros(10, 32)
    tuned[PREFIX + "vlm.model.text_model.embed_tokens.weight"] = torch.ones(10, 32)
    (tmp_path / "base").mkdir()
    (tmp_path / "tuned").mkdir()
    save_file(base, str(tmp_path / "base" / "model.safetensors"))
    save_file(tuned, str(tmp_path / "tuned" / "model.safetensors"))
    return tmp_path


def test_ranks_follow_the_update_spectrum(checkpoints):
    report = analyse(read_weights(checkpoints / "base"), read_weights(checkpoints / "tuned"))
    by_group = {m.group: m for m in report.modules}
    assert set(by_group) == {"vision", "language", "action"}  # embeddings left out
    # energies 16, 4, 1, 1 of 22: E = .727, .909, .955, 1
    assert by_group["vision"].ranks == {0.5: 1, 0.7: 1, 0.8: 2, 0.9: 2, 0.99: 4}
    assert by_group["language"].ranks == {e: 1 for e in report.etas}
    # nine equal values: E(k) = k / 9, no eta on a boundary
    assert by_group["action"].ranks == {0.5: 5, 0.7: 7, 0.8: 8, 0.9: 9, 0.99: 9}
    assert report.suggest_r(0.9) == 16  # 90% of modules need <= 9 -> next power of two


def test_cli_prints_tables_and_writes_the_plot(checkpoints, capsys):
    plot = checkpoints / "out" / "fig4.png"
    code = main(
        [
            "spectrum",
            "--base",
            str(checkpoints / "base"),
            "--tuned",
            str(checkpoints / "tuned"),
            "--plot",
            str(plot),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "lm_expert.layers.0.mlp.down_proj" in out and "vision (1)" in out
    assert plot.is_file() and plot.read_bytes()[:4] == b"\x89PNG"


def test_cli_reports_bad_input(checkpoints, capsys):
    assert main(["spectrum", "--base", str(checkpoints / "nope"), "--tuned", str(checkpoints / "tuned")]) == 2
    assert "does not exist" in capsys.readouterr().out
    other = {k: torch.zeros(3, 3) for k in read_weights(checkpoints / "tuned")}
    save_file(other, str(checkpoints / "other.safetensors"))
    assert (
        main(
            [
                "spectrum",
                "--base",
                str(checkpoints / "other.safetensors"),
                "--tuned",
                str(checkpoints / "tuned"),
            ]
        )
        == 2
    )
    assert "not of one backbone" in capsys.readouterr().out
