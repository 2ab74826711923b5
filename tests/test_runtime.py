"""models/runtime.py: the CPU name that results files carry; interrupts held over a step that must not be cut."""

from __future__ import annotations

import os
import platform
import signal

import pytest

from models.runtime import cpu_flags, cpu_id, cpu_name, interrupts_held


def test_cpu_name_reads_the_model_name_line(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2\n")
    assert cpu_name(f) == "AMD EPYC 7B13"


def test_cpu_name_falls_back_to_platform(tmp_path):
    expected = platform.processor() or platform.machine()
    assert cpu_name(tmp_path / "missing") == expected
    (tmp_path / "arm").write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")  # no model name line (some ARM kernels)
    assert cpu_name(tmp_path / "arm") == expected


def test_cpu_id_and_flags_read_the_first_core(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 "
                    "avx512_bf16\n\nprocessor\t: 1\ncpu family\t: 25\nmodel\t\t: 17\nflags\t\t: fpu\n")  # fmt: skip
    assert cpu_id(info) == "family 26, model 2"
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_id(tmp_path / "missing") == "?" and cpu_flags(tmp_path / "missing") == set()


def test_interrupts_held_act_at_the_end_of_the_outermost_block_and_once():
    steps = []
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with interrupts_held():
                with interrupts_held():
                    os.kill(os.getpid(), signal.SIGINT)
                    os.kill(os.getpid(), signal.SIGINT)
                    steps.append("inner done")
                steps.append("outer done")
            steps.append("not reached")
        assert steps == ["inner done", "outer done"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
        with interrupts_held():  # nothing held: nothing acts
            steps.append("quiet")
        assert steps[-1] == "quiet"
    finally:
        signal.signal(signal.SIGINT, before)


def test_interrupts_held_leave_signals_not_handled_in_python_alone():
    before = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with interrupts_held():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)  # ignored, as it would be without the block
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)
