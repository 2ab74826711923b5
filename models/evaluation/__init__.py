"""Evaluation of an NVS-SQA model (what evaluate.py runs).

Modules:
    protocol     the benchmark protocol: splits, ridge fits, SRCC/PLCC/KRCC/RMSE tables
    bank         the benchmark bank's sequences and their feature cache
    degrade      the graded-degradation benchmark on the examples
    run          evaluate.py's options and its run
"""
