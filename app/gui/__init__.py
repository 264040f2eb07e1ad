"""The PySide6 workstation window. Composes widgets, worker threads and calls into
collect/train/evaluate; holds no domain logic."""
