"""What a stage needs from a worker."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resources:
    """Declared per worker. The local executor uses ``cpus`` for its thread count; the Ray executor
    maps these to ``num_cpus``/``num_gpus``/``memory`` of each task or actor."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 1.0

    def __post_init__(self) -> None:
        if self.cpus < 0 or self.gpus < 0 or self.memory_gb <= 0:
            raise ValueError(f"invalid resources: {self}")
