"""Builds the C extension fpc._fastpath from csrc/.

FPC_SANITIZE=1 builds with AddressSanitizer and UBSan; FPC_DEBUG=1 with -O0 -g.
"""

import glob
import os

import numpy
from setuptools import Extension, setup

extra_compile = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
extra_link: list[str] = []
if os.environ.get("FPC_SANITIZE") == "1":
    extra_compile += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"]
    extra_link += ["-fsanitize=address,undefined"]
elif os.environ.get("FPC_DEBUG") == "1":
    extra_compile += ["-O0", "-g"]
else:
    extra_compile += ["-O2"]

fastpath = Extension(
    "fpc._fastpath",
    sources=sorted(glob.glob("csrc/*.c")),
    include_dirs=["csrc", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    libraries=["pcap", "pthread"],  # libpcap-dev (apt) for live capture, csrc/capture.c
    extra_compile_args=extra_compile,
    extra_link_args=extra_link,
)

setup(ext_modules=[fastpath])
