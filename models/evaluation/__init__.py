"""Evaluation of an NVS-SQA model: the benchmark protocol, the bank and its feature cache, the degradation
benchmark, and the run that evaluate.py calls."""
