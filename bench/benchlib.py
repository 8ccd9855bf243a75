"""What every benchmark script shares: the machine it ran on (figures mean nothing without the CPU model beside
them) and how a result is written and summarised. Imported by the scripts in this folder (``python bench/X.py``
puts the folder on ``sys.path``)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

# The flags that decide how fast training runs on a CPU (bf16/AMX paths or plain AVX2 fp32).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def _cpuinfo_field(name: str) -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() == name), None)


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC 7B13", "Intel(R) Xeon(R) Processor", ...)."""
    return _cpuinfo_field("model name") or platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """Which of ``SPEED_FLAGS`` this CPU reports."""
    flags = set((_cpuinfo_field("flags") or "").split())
    return [flag for flag in SPEED_FLAGS if flag in flags]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_result(out: Path, result: dict, headline: tuple[str, ...] = ()) -> None:
    """Write ``result`` as JSON to ``out``, print its ``headline`` keys and where it went."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if headline:
        print(json.dumps({key: result[key] for key in headline if key in result}, indent=2))
    print(f"written to {out}")
