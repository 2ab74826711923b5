"""Self-supervised training of the NVS-SQA encoder: pairs, targets (ST-RRED in torch), the loop, run folders."""
