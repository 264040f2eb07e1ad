"""The file names of a run directory, `runs/<run>/`: what the trainer writes and every reader
(evaluate, the study, the Train page) looks for. Plain strings, no imports, so a reader
needs neither torch nor the modules that write them.

    config.json             the resolved TrainConfig (train.config)
    metrics.jsonl           progress, one JSON object a line (train.metrics)
    job.json, train.log     the background job's record and its output (train.jobs)
    cancel.request          asks the run to save and stop (train.stop)
    checkpoints/<step>/     train.checkpoint; `checkpoints/last` names the newest
        pretrained_model/   what lerobot loads, + backbone.json; a PEFT strategy's
                            adapter_config.json + adapter_model.safetensors (train.adapters.io)
        training_state.pt   optimiser, scheduler, RNG states, step
        resume_point        marker: a checkpoint kept only until a newer one lands
"""

RUN_CONFIG = "config.json"
METRICS_NAME = "metrics.jsonl"
JOB_FILE = "job.json"
LOG_FILE = "train.log"
CANCEL_FILE = "cancel.request"

CHECKPOINTS = "checkpoints"
PRETRAINED = "pretrained_model"
TRAINING_STATE = "training_state.pt"
BACKBONE_FILE = "backbone.json"
RESUME_POINT = "resume_point"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
