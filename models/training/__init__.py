"""Self-supervised training of the NVS-SQA encoder (train.py; docs/training.md).

Modules:
    pairs           validate renders/, sample, build and degrade training pairs (the PairDataset)
    targets         the recipes, the noises and the five targets, defined one pair at a time
    device_targets  the five targets of a batch on the training device: the one route a run scores pairs by
    strred          ST-RRED in torch
    config          TrainConfig (every flag), the presets, the input checks and step order
    contrastive     encoder + projector heads, the loss, validation
    run_folder      checkpoints, resume state, metrics.jsonl, plots
    stop            the stop signal (SIGUSR2) the loop and the submitit job share
    loop            the training loop: Trainer and train(), DDP, the checkpoint schedule
    preview         --preview: the first batches of a run, written to look at
    cluster         train.py as a submitit job, requeued after a timeout or preemption
"""
