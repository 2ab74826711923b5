"""The toolkit: shared flat modules and one subpackage per job; the five top-level scripts are thin entry points.

Shared flat modules (none imports a subpackage):

    errors       InputError, the one error type: unusable user input, reported as one line, exit code 2
    cli          config dataclass <-> flags (``opt``), library errors in flag terms, ``main()`` of every script
    runtime      device choice, CPU threads, logging setup, the paths rule (``locate``)
    frames       reading sequences (frame folders, videos, image lists, arrays) into validated uint8 RGB frames
    discovery    the sequences an input holds in the render trees people have (scene/method, 3DGS, NerfBaselines)
    pixels       reading one image file (OpenCV's libjpeg-turbo, Pillow for the rest) at its own bit depth
    video        video decoding and encoding through PyAV, colour tags honoured
    results      atomic result files stamped with the versions that made them; strict JSON; Markdown/CSV tables
    journal      several result files replaced as one unit (checked, then committed); file names from user names
    unpickle     pickled weights read without running code from the file: one allow-list for every loader
    stats        Pearson, Spearman (SRCC), Kendall tau-b (KRCC), RMSE, NaN where undefined
    ssim         the one SSIM / PSNR (NVS-SQA training targets, CrossScore target)
    cluster      the submitit executors (local, SLURM) that preprocess.py, app.py, evaluate.py and train.py share

Subpackages (each lists its modules in its own docstring):

    nvs_sqa      NVS-SQA (no reference): network, checkpoints, the window rule, the scorer, app.py's run
    evaluation   benchmark protocol (SRCC/PLCC/KRCC/RMSE), bank + feature cache, degradation benchmark (evaluate.py)
    training     self-supervised training of the NVS-SQA encoder: pairs, targets (ST-RRED), loop, run folders
    preprocess   rendering the unlabelled training set with nerfstudio: jobs, commands, plan, CLI check
    crossscore   CrossScore (reference-based, and its no-reference variant): network, data, training, prediction
    fullref      full-reference metrics (PSNR, SSIM, MS-SSIM, LPIPS, DISTS, FLIP) as named protocols compute them
    report       the scene report (report.py): every method's metrics, ranked with confidence, where each fails

``crossscore``, ``fullref`` and ``preprocess`` need nothing from ``nvs_sqa``, ``training`` or ``evaluation``.
tests/test_layout.py checks these rules, the absence of import cycles and the size limits.
"""
