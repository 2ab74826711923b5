"""Rendering the unlabelled training set with nerfstudio (what preprocess.py runs).

Modules:
    config       preprocess.py's options (PreprocessConfig)
    jobs         one job's steps, its lock and its run; the job runner
    commands     the nerfstudio commands of a job, the environment probe, the plan of all jobs
    plan         the plan shown (--dry-run), job states, the CLI check's driver
    cli_check    parsing every planned command with nerfstudio's own CLI
    cluster      the jobs on several GPUs here or as a SLURM array (submitit)
    run          one preprocess run: plan, check or run the jobs
"""
