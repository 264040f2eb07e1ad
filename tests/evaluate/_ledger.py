"""Ledger entries as `piper-ws study` writes them under `<out>/rows/`, for the readers' tests."""

from evaluate.stats import wilson
from evaluate.study import LEDGER_DIR, LedgerEntry, StudyRow, TrainingFigures

TASKS = ("open_pot", "pour_block", "press_button", "pick_grape")


def write_row(out, row: str, successes: tuple[int, ...], trainable_pct: float, active_rank=None, trials=15):
    """`<out>/rows/<row>.json` for study `big`'s run `big-<row>`, `successes` per paper task."""
    figures = TrainingFigures(trainable_pct=trainable_pct, overall_active_rank=active_rank)
    per_task = {task: wilson(s, trials) for task, s in zip(TASKS, successes, strict=True)}
    entry = LedgerEntry(
        {"name": "big"}, StudyRow(row, f"big-{row}", 1e-3, per_task, figures), scored_on="elsewhere"
    )
    path = out / LEDGER_DIR / f"{row}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(entry.to_json())
    return path
