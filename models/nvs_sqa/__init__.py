"""NVS-SQA (no reference): per-frame view encoder + temporal transformer -> 384-d representation -> JOD.

    from models.nvs_sqa import NVSSQA
    model = NVSSQA.from_checkpoint()          # released v0.0.1 (make setup), CPU or CUDA
    model.score("examples/Giraffe+NeRF")      # -2.0439...

network.py: the modules (upstream parameter names) and the ridge head; checkpoint.py: the checkpoint folder
format (the only writer of it) and the released-weights fetcher; scorer.py: :class:`NVSSQA`; bench.py: the
scorer benchmark (``make bench``).
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
