"""models/runtime.py: the CPU name that results files carry."""

from __future__ import annotations

import platform

from models.runtime import cpu_name


def test_cpu_name_reads_the_model_name_line(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2\n")
    assert cpu_name(f) == "AMD EPYC 7B13"


def test_cpu_name_falls_back_to_platform(tmp_path):
    expected = platform.processor() or platform.machine()
    assert cpu_name(tmp_path / "missing") == expected
    (tmp_path / "arm").write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")  # no model name line (some ARM kernels)
    assert cpu_name(tmp_path / "arm") == expected
