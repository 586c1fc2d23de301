"""LPM-Bench-mini: evaluator probes, fixed evaluation suites, metrics and reports.

Benchmark any generator by implementing `Performer` (`perform(case) -> frames`) and calling
`run_quality([...], build_suite("quick"), out_dir)`; see docs/bench.md.
"""

from npc_runtime.bench.cases import (SUITE_VERSION, SUITES, BenchCase, build_suite,
                                     load_cases_yaml)
from npc_runtime.bench.performers import (FolderPerformer, GroundTruthPerformer, NoisePerformer,
                                          Performer, ReferencePerformer, export_case)
from npc_runtime.bench.probes import Probe
from npc_runtime.bench.report import run_quality
from npc_runtime.bench.runner import run_performer

__all__ = [
    "SUITE_VERSION", "SUITES", "BenchCase", "build_suite", "load_cases_yaml", "FolderPerformer",
    "GroundTruthPerformer", "NoisePerformer", "Performer", "ReferencePerformer", "export_case",
    "Probe", "run_quality", "run_performer",
]
