"""Where a training job runs: this machine (its default device, the CPU or one GPU) or a
Slurm cluster (partition, GPUs per node, wall time), as `piper-ws train --device/--slurm`.

The cluster is offered only where Slurm's commands are on the PATH (the workstation is a
submit host) and the workspace's disk is shared with the nodes (which this widget cannot
check: the tooltip says so). No torch: the GPUs are counted from their device nodes.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLineEdit, QSpinBox, QWidget

SLURM = "Slurm cluster"


class JobTargetForm(QWidget):
    """A combo box of places, and the Slurm fields beside it when the cluster is chosen."""

    def __init__(self, parent: QWidget | None = None):
        from train.jobs import gpu_count
        from train.slurm import SlurmError, check_available

        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.addItem("this machine (a GPU if there is one)", None)
        self.combo.addItem("this machine: CPU", "cpu")
        for k in range(gpu_count()):
            self.combo.addItem(f"this machine: GPU {k}", f"cuda:{k}")
        try:
            check_available()
            self.combo.addItem(SLURM, SLURM)
            self.combo.setToolTip(f"{SLURM}: the workspace must be on a disk the cluster's nodes share")
        except SlurmError as exc:
            self.combo.setToolTip(str(exc))  # why the cluster is not offered
        self.partition_edit = QLineEdit()
        self.partition_edit.setPlaceholderText("partition: the cluster's default")
        self.gpus_spin = QSpinBox()
        self.gpus_spin.setRange(0, 64)
        self.gpus_spin.setPrefix("GPUs per node: ")
        self.time_edit = QLineEdit()
        self.time_edit.setPlaceholderText("time limit HH:MM")
        self.slurm_fields = QWidget()
        fields = QHBoxLayout(self.slurm_fields)
        fields.setContentsMargins(0, 0, 0, 0)
        for widget in (self.partition_edit, self.gpus_spin, self.time_edit):
            fields.addWidget(widget)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo)
        row.addWidget(self.slurm_fields, 1)
        self.slurm_fields.setVisible(False)
        self.combo.currentIndexChanged.connect(
            lambda _: self.slurm_fields.setVisible(self.combo.currentData() == SLURM)
        )

    def target(self):
        """(device or None, SlurmSpec or None) for `train.jobs.start_job`; a ValueError that
        says what to fix for a field Slurm would refuse."""
        from train.slurm import SlurmSpec

        if self.combo.currentData() != SLURM:
            return self.combo.currentData(), None
        time = self.time_edit.text().strip() or None
        try:
            spec = SlurmSpec(self.partition_edit.text().strip() or None, self.gpus_spin.value(), time=time)
        except ValueError:
            raise ValueError(f"time limit {time!r}: give hours and minutes, HH:MM, e.g. 04:00") from None
        return None, spec
