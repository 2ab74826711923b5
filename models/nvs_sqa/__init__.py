"""NVS-SQA (no reference): per-frame view encoder + temporal transformer -> 384-d representation -> JOD.

    from models.nvs_sqa import NVSSQA
    model = NVSSQA.from_checkpoint()          # released v0.0.1 (make setup), CPU or CUDA
    model.score("examples/Giraffe+NeRF")      # -2.0439...

Modules:
    network      the modules (upstream parameter names), the ridge head, the inference fast path
    checkpoint   the checkpoint folder format (its only writer) and the released-weights fetcher
    precision    the precision modes (exact, mixed, bf16, fp16) and where each runs
    validity     the validated limits (read from validity_v2.json) and the checks that apply them
    windows      the one window rule: one pass or windows, as a WindowPlan; WindowedScore
    scorer       NVSSQA, the API object: features, scores, windows of any sequence
    feed         feeding the encoder: frames decoded on every core (threads or processes), overlapped copies
    figures      the quality curve of a windowed sequence
    app_config   app.py's options (AppConfig) and the reading of --window/--stride
    outputs      app.py's output files: names, the same-model check, the merge into --out
    run          one app.py run here: discover, score, write, report
    shard        --shard I/N selection, shard.json, --merge of shard folders
    launch       app.py's ways to run: here, as shard jobs (submitit), or a merge
"""

from models.nvs_sqa.network import (
    MIN_FRAME_SIZE,
    ModelConfig,
    Regressor,
    SequenceModel,
    ViewEncoder,
    count_parameters,
    fold_batchnorm,
    optimize_for_inference,
)
from models.nvs_sqa.scorer import NVSSQA

__all__ = [
    "MIN_FRAME_SIZE", "NVSSQA", "ModelConfig", "Regressor", "SequenceModel", "ViewEncoder", "count_parameters",
    "fold_batchnorm", "optimize_for_inference",
]
