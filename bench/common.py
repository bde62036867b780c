"""What every bench script shares: the machine it ran on, a plain-text table, the JSON record."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from search.provenance import git_commit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
# The real labelled sample beside the checkout (read-only, never copied into it).
DEFAULT_SAMPLE = REPO.parent / "shared" / "pcam-kaggle-sample"
# Labelled patches from slides the sample never saw (PCam's validation split): the closest
# thing here to Kaggle's leaderboard. Scored, never searched or chosen on.
DEFAULT_UNSEEN = REPO.parent / "shared" / "pcam-unseen-slides"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info(*, with_keras: bool = True) -> dict[str, Any]:
    """CPU, cores, RAM, load and package versions: what a reader needs to weigh a number."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gib": _ram_gib(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
        "commit": git_commit(),
    }
    if with_keras:
        import keras

        info["keras"] = keras.__version__
        info["backend"] = keras.backend.backend()
        backend_package = {"tensorflow": "tensorflow-cpu", "jax": "jax", "torch": "torch"}
        package = backend_package.get(info["backend"], info["backend"])
        version = _version(package)
        if package == "tensorflow-cpu" and version == "not installed":
            version = _version("tensorflow")
        info["backend_version"] = version
    return info


def describe_machine(info: dict[str, Any]) -> str:
    """One line such as 'AMD EPYC, 2 cores, 23.5 GiB RAM, ...'."""
    parts = [
        info["cpu"],
        f"{info['cores']} cores",
        f"{info['ram_gib']:.1f} GiB RAM" if info.get("ram_gib") else "RAM unknown",
        f"Python {info['python']}",
    ]
    if "keras" in info:
        parts.append(f"Keras {info['keras']} ({info['backend']} {info['backend_version']})")
    parts.append(f"NumPy {info['numpy']}, Pillow {info['pillow']}")
    parts.append(f"load average at start {info['load_average'][0]}")
    return ", ".join(parts)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, padded so that it also reads well in a terminal."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def write_results(name: str, payload: dict[str, Any], path: Path | None = None) -> Path:
    """Write ``payload`` as JSON to ``bench/results/<name>.json`` (git-ignored) or ``path``."""
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return path


def synthetic_set(count: int, *, seed: int = 0) -> Path:
    """A synthetic Kaggle-layout set of ``count`` training patches, generated once and reused.

    It lives in the cache folder (``$PCAM_CACHE_DIR`` or ``~/.cache/pcam-search``) as
    ``bench-synthetic-<count>``; 50,000 patches take several minutes to generate on 2 cores.
    """
    from pcam.cache import default_cache_root
    from pcam.synth import generate

    suffix = "" if seed == 0 else f"-seed{seed}"
    folder = default_cache_root() / f"bench-synthetic-{count}{suffix}"
    if not (folder / "train_labels.csv").is_file():
        print(f"generating {count} synthetic patches into {folder} (once)", file=sys.stderr)
        generate(folder, n_train=count, n_test=0, seed=seed)
    return folder


def _machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used since boot (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of every child it has waited for (and theirs)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class CpuWindow:
    """How busy the rest of the machine was while a measurement ran, in cores.

    On a shared machine other people's work slows a measurement down; this says by how much
    room there was. Child processes count as ours once they have been waited for, so a window
    must enclose the whole life of any process it starts.
    """

    def __init__(self) -> None:
        self.wall = 0.0
        self.other_cpu = 0.0
        self._started: tuple[float, float, float] | None = None

    def __enter__(self) -> CpuWindow:
        self._started = (time.perf_counter(), _machine_busy_seconds(), _own_cpu_seconds())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._started is not None
        wall, busy, own = self._started
        self.wall += time.perf_counter() - wall
        machine = _machine_busy_seconds() - busy
        self.other_cpu += max(0.0, machine - (_own_cpu_seconds() - own))
        self._started = None

    @property
    def other_cores(self) -> float:
        """Average number of cores that other processes kept busy during the window(s)."""
        return self.other_cpu / self.wall if self.wall else 0.0
