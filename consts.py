"""The one typed source of truth: versions, paths, checkpoints, scenes, methods, datasets, defaults.

Everything that is a *fact* about the systems we reproduce (names, checksums, published numbers) lives
here, so that scripts, library code and tests read the same value. Nothing in this file does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

# --------------------------------------------------------------------------------------------- versions
PROJECT_NAME: Final = "nvs-quality"
PROJECT_VERSION: Final = "0.1.0"  # stamped into every results file we write

# --------------------------------------------------------------------------------------------- paths
ROOT: Final = Path(__file__).resolve().parent
CHECKPOINTS_DIR: Final = ROOT / "checkpoints"  # fetched by `make setup`, never committed
CACHE_DIR: Final = ROOT / ".cache"  # downloaded wheels, feature caches
EXAMPLES_DIR: Final = ROOT / "examples"
RUNS_DIR: Final = ROOT / "runs"
SHARED_DIR: Final = ROOT.parent / "shared"  # specs, reference values, benchmark labels (beside the repo)
REFERENCE_FEATURES: Final = SHARED_DIR / "reference" / "features.npz"  # the release's own 384-d features (parity)
EXAMPLE_SEQUENCES: Final = ("Giraffe+NeRF", "Giraffe+IBRNet-C")  # the two upstream example sequences in examples/

# --------------------------------------------------------------------------------------------- app.py's files
# Written into --out (default: the input folder, as upstream), so frame discovery must know them too.
APP_FEATURES: Final = "output_features.npz"  # {name: 384-d float32} (upstream's file)
APP_FEATURES_META: Final = "output_features.json"  # the checkpoint and settings that made it
APP_SCORES_CSV: Final = "scores.csv"
APP_SCORES_JSON: Final = "scores.json"
APP_WINDOWS_CSV: Final = "windows.csv"  # name, start, end, score of every window
APP_CURVES: Final = "curves"  # curves/<name>.png
APP_OUTPUTS: Final = frozenset({APP_FEATURES, APP_FEATURES_META, APP_SCORES_CSV, APP_SCORES_JSON, APP_WINDOWS_CSV,
                                APP_CURVES})

# --------------------------------------------------------------------------------------------- frames
IMAGE_EXTS: Final = (".png", ".jpg", ".jpeg")  # what upstream reads; matched case-insensitively
VIDEO_EXTS: Final = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


# --------------------------------------------------------------------------------------------- NVS-SQA
@dataclass(frozen=True)
class ReleasedFile:
    """One data file inside the released wheel that we use, with its sha256 (see shared/reference)."""

    member: str  # path inside the wheel
    sha256: str
    target: str  # file name under checkpoints/<version>/


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """The CC0 NVS-SQA release: a PyPI wheel whose data files hold the weights and the ridge regressor."""

    version: str
    wheel_name: str
    wheel_version: str
    wheel_file: str
    wheel_sha256: str
    state_dict: ReleasedFile
    config: ReleasedFile
    regressor_pickle: ReleasedFile

    @property
    def dir(self) -> Path:
        return CHECKPOINTS_DIR / self.version


_MEMBER_STEM: Final = (
    "nvs_sqa/checkpoints/v0.0.1/models/SeqModel_TransEncoder_rgb_viewsz(192)_lowfeat(24+48+96)"
    "_fviewsz(360)_pretr(0)_fuse(last)angsz(384)_nlyr(2)_v0.0.1"
)
RELEASED: Final = ReleasedCheckpoint(
    version="v0.0.1",
    wheel_name="nvs-sqa",
    wheel_version="0.1.1",
    wheel_file="nvs_sqa-0.1.1-py3-none-any.whl",
    wheel_sha256="67a02dfb5111a8680ae10ad104679daaf3d3d2501a2763377408778c1052a336",
    state_dict=ReleasedFile(
        member=_MEMBER_STEM + "_100.pth",
        sha256="322dd9b1301694f0439ed1e94ddf093724024afbf320f6545a86bc6fe6ed6497",
        target="model.pth",
    ),
    config=ReleasedFile(
        member=_MEMBER_STEM + "_config.json",
        sha256="7728f1d2970177354319d74a0ad442bbaf6605598c1407107b6879a5a72f2a3a",
        target="config.json",
    ),
    regressor_pickle=ReleasedFile(
        member="nvs_sqa/checkpoints/v0.0.1/regr/linear_regr.pkl",
        sha256="df5ad7ecae02ae7eca4b48c54e11aa68987d4baadb3d1294e175f5a283124528",
        target="linear_regr.pkl",
    ),
)
# Inside a checkpoint folder (released or written by train.py / evaluate.py):
CKPT_CONFIG: Final = "config.json"  # model hyper-parameters (upstream config JSON fields)
CKPT_WEIGHTS: Final = "model.pth"  # plain state_dict, loaded with torch.load(weights_only=True)
CKPT_REGRESSOR: Final = "regressor.json"  # {"coef": [...], "intercept": x, "alpha": a, "source_sha256": ...}

# Published JOD scores of the released model on the two example sequences (upstream README).
PUBLISHED_EXAMPLE_SCORES: Final = {"Giraffe+NeRF": -2.0440, "Giraffe+IBRNet-C": -2.1063}

DEFAULT_BATCH_SIZE: Final = 4  # frames per view-encoder call; upstream uses 10 (numerically equivalent)

# --------------------------------------------------------------------------------------------- benchmark
BENCHMARK_DATASETS: Final = ("fieldwork", "lab", "llff")
BENCHMARK_METHODS: Final = (
    "directvoxgo", "gnt_crossscene", "gnt_singlescene", "ibrnet_finetune", "ibrnet_pretrain",
    "light_field", "mipnerf", "nerf", "nex", "plenoxel",
)  # fmt: skip
BENCHMARK_LABELS_FILE: Final = "flat_labels_offset_by_ref_scenewise_split_11.json"
# Published SRCC / PLCC of the released model (upstream README / paper), per dataset.
PUBLISHED_BENCHMARK: Final = {
    "fieldwork": {"srcc": 0.9111, "plcc": 0.8828},
    "llff": {"srcc": 0.7000, "plcc": 0.6441},
    "lab": {"srcc": 0.7000, "plcc": 0.6783},
}

# --------------------------------------------------------------------------------------------- training data
TRAIN_SCENES: Final = (
    "aspen", "bww_entrance", "campanile", "desolation", "dozer", "Egypt", "floating-tree", "Giannini-Hall",
    "kitchen", "library", "person", "plane", "poster", "redwoods2", "sculpture", "stump", "vegetation",
)  # fmt: skip
TRAIN_METHODS: Final = (
    "splatfacto", "nerfacto", "tensorf", "instant-ngp", "kplanes-20", "kplanes-100", "kplanes-1000",
    "nerfacto-huge",
)  # fmt: skip
# History, not a rule: the scene/method pairs that upstream's preprocess.py loop skips. Its train.py reads all
# 17 x 8 renders, so these had been rendered in an earlier run (spec, "What the upstream training code actually
# does", 7.): preprocess.py plans every pair; this set is kept for the docs and the tests only.
SKIPPED_PAIRS: Final = frozenset(
    {(s, m) for s in TRAIN_SCENES[:6] for m in ("splatfacto", "nerfacto", "tensorf")}
    | {(s, "nerfacto-huge") for s in ("campanile", "desolation", "dozer")}
)

# --------------------------------------------------------------------------------------------- preprocess (nerfstudio)
DATASETS_DIR: Final = ROOT / "datasets"  # nerfstudio captures at datasets/nerfstudio/{scene} (ns-download-data)
NS_OUTPUTS_DIR: Final = ROOT / "outputs"  # ns-train runs: outputs/{scene}/{method}/preprocess/config.yml
RENDERS_DIR: Final = ROOT / "renders"  # renders/{scene}__{method}/00000.png… (the unlabelled training set)
RENDER_FPS: Final = 30  # ns-render --frame-rate, and the frame rate of the mp4 we write
NS_INSTALL_HINT: Final = (
    "install nerfstudio in its own CUDA environment (docs/preprocess.md: `pip install nerfstudio==1.1.5 "
    "kplanes-nerfstudio==0.5.2`) and put its bin/ on PATH or pass --ns-bin DIR"
)


@dataclass(frozen=True)
class NsMethod:
    """How one of TRAIN_METHODS is trained by nerfstudio (``ns-train <ns_method> <args>``)."""

    ns_method: str  # the ns-train subcommand
    args: tuple[str, ...] = ()  # extra ns-train arguments (the kplanes-N far planes)
    cuda_args: tuple[str, ...] = ()  # extra ns-train arguments on CUDA only (they put something on the GPU)
    needs_cuda: bool = False  # CUDA-only kernels (gsplat, nerfacc): cannot be trained on the CPU at all
    gpu_minutes: float = 0.0  # reported cost per scene on one GPU (spec, section Preprocess)


def _kplanes(far: int) -> NsMethod:
    return NsMethod("kplanes", ("--pipeline.model.near-plane", "0", "--pipeline.model.far-plane", str(far)),
                    gpu_minutes=30)


NS_METHODS: Final = {
    # upstream: splatfacto's full-image datamanager also caches the decoded training images on the GPU
    "splatfacto": NsMethod("splatfacto", cuda_args=("--pipeline.datamanager.cache-images", "gpu"), needs_cuda=True,
                           gpu_minutes=5),
    "nerfacto": NsMethod("nerfacto", gpu_minutes=15),
    "tensorf": NsMethod("tensorf", gpu_minutes=20),
    "instant-ngp": NsMethod("instant-ngp", needs_cuda=True, gpu_minutes=20),
    "kplanes-20": _kplanes(20),
    "kplanes-100": _kplanes(100),
    "kplanes-1000": _kplanes(1000),
    "nerfacto-huge": NsMethod("nerfacto-huge", gpu_minutes=180),
}
assert set(NS_METHODS) == set(TRAIN_METHODS)


# --------------------------------------------------------------------------------------------- CrossScore
# CrossScore: image normalisation, backbone shapes, sizes, paths of its models (facts: ../shared/specs/crossscore.md)
IMAGENET_MEAN: Final = (0.485, 0.456, 0.406)
IMAGENET_STD: Final = (0.229, 0.224, 0.225)
# facebook/dinov2-small as a local config: the upstream checkpoint's backbone is built from this, then filled.
CROSSSCORE_DINOV2_SMALL: Final = {
    "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4, "image_size": 518,
    "patch_size": 14, "layer_norm_eps": 1e-6, "layerscale_value": 1.0, "qkv_bias": True, "use_swiglu_ffn": False,
    "hidden_act": "gelu",
}  # fmt: skip
# `--backbone tiny`: a small randomly initialised, trainable DINOv2 for offline training on a CPU.
CROSSSCORE_TINY_BACKBONE: Final = {
    "hidden_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4, "mlp_ratio": 2, "image_size": 112,
    "patch_size": 14, "layer_norm_eps": 1e-6, "layerscale_value": 1.0, "qkv_bias": True, "use_swiglu_ffn": False,
    "hidden_act": "gelu",
}  # fmt: skip
CROSSSCORE_N_REF: Final = 5  # references per query (upstream)
CROSSSCORE_PREDICT_SHORT_SIDE: Final = 518  # predict: resize the short side to this (upstream)
CROSSSCORE_TRAIN_SHORT_SIDE: Final = 540  # train: resize short side, then random crop (upstream)
CROSSSCORE_TRAIN_CROP: Final = 518
CROSSSCORE_TINY_DIR: Final = CHECKPOINTS_DIR / "crossscore-tiny"  # made by `make crossscore-demo`
CROSSSCORE_UPSTREAM_CKPT: Final = "CrossScore-v1.0.0.ckpt"  # 129 MB Lightning checkpoint (not fetchable here)
# The offline demo model, committed (self-trained by `make crossscore-demo`, packed to one file): predict's default.
CROSSSCORE_DEMO_MODEL: Final = EXAMPLES_DIR / ".crossscore-demo.pth"  # hidden: app.py scores examples/
CROSSSCORE_DEMO_SHA256: Final = "1b322beb1383a512e4ec080296b4c261d363320ccfa494db29d146e41f7ac989"
CROSSSCORE_DEMO_WARNING: Final = (
    "the CrossScore demonstration model (examples/.crossscore-demo.pth): trained offline on the two example "
    "sequences, it predicts ~0.95 nearly whatever the defect (held-out pixel Pearson 0.11, docs/crossscore.md); its "
    "maps show the pipeline, not render quality; for real scores use upstream's CrossScore-v1.0.0.ckpt (--checkpoint)"
)

