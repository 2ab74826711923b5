"""Benchmarks: results files (json/md) and the GPU check (`python -m benchmarks.gpu_check`, make gpu-check)."""
