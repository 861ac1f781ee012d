"""The CPU line every benchmark prints, and the AVX2-only emulation that lets any AVX-512 machine run the
benchmarks with the kernels an AVX2-only CPU gets."""

import os
import subprocess
import sys

import pytest

from tf_bert_seqgen import cpu

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)
import avx2_only  # noqa: E402

# Two processors of a 2-core VM, as Linux writes /proc/cpuinfo (trimmed).
CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512_vnni

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 167
model name\t: Intel Xeon
flags\t\t: fpu sse2 avx2 amx_tile
"""


def test_cpuinfo_gives_the_first_processors_name_generation_and_flags():
    model, flags = cpu.parse_cpuinfo(CPUINFO)
    assert model == "AMD EPYC (family 25, model 17)"
    assert {"avx2", "fma", "avx512f", "avx512_bf16"} <= flags
    assert "amx_tile" not in flags


def test_cpuinfo_without_generation_numbers_keeps_the_bare_name():
    # An ARM machine: no "cpu family" line, its flags under "Features".
    model, flags = cpu.parse_cpuinfo("processor\t: 0\nmodel name\t: Neoverse-N1\nFeatures\t: fp asimd sve\n")
    assert model == "Neoverse-N1"
    assert flags == {"fp", "asimd", "sve"}


def test_avx2_caps_keep_other_xla_flags_and_replace_an_isa_cap():
    environ = {"XLA_FLAGS": "--xla_cpu_max_isa=AVX512 --xla_dump_to=/tmp/x", "PATH": "/bin"}
    capped = avx2_only.capped_environment(environ)
    assert capped["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", "--xla_cpu_max_isa=AVX2"]
    assert capped["TF_ENABLE_ONEDNN_OPTS"] == "0" and capped["ATEN_CPU_CAPABILITY"] == "avx2"
    assert capped["PATH"] == "/bin"
    assert avx2_only.is_capped(capped) and not avx2_only.is_capped(environ)


def test_avx2_wrapper_runs_the_script_with_tensorflow_on_eigen_and_torch_on_avx2(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys, torch\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "print(_pywrap_util_port.IsMklEnabled(), torch.backends.cpu.get_cpu_capability(), sys.argv[1:])\n")
    result = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "avx2_only.py"), str(script), "--a", "b"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[-2] == "False AVX2 ['--a', 'b']"


@pytest.mark.parametrize("argv, message", [([], "usage"), (["serving"], "usage"), (["missing.py"], "no such script")])
def test_avx2_wrapper_refuses_what_is_not_a_script(argv, message):
    result = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "avx2_only.py"), *argv],
                            capture_output=True, text=True)
    assert result.returncode != 0 and message in result.stderr
