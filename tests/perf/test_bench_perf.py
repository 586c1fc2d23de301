"""`npc-runtime bench perf` end to end: a real sidecar process, real gRPC clients, espeak speech."""

from __future__ import annotations

import json

from npc_runtime.cli import main


def test_bench_perf_ramps_compares_and_reports(tmp_path, micro_yaml, capsys):
    out = tmp_path / "perf"
    code = main(["bench", "perf", "--model", str(micro_yaml), "--threads", "1",
                 "--ramp", "1,3", "--stream-s", "4", "--compare-n", "3", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads((out / "perf.json").read_text())
    assert (out / "perf.png").stat().st_size > 10_000
    ramp = report["ramp"]
    assert [r["n"] for r in ramp][:1] == [1]
    for r in ramp:                       # the figures come from what the clients received
        assert r["frames"] > 0 and len(r["streams"]) == r["n"]
        assert r["latency_p50_ms"] > 0 and r["time_to_first_frame_s"] > 0
    assert report["sustained_npcs"] >= 1, [(r["n"], r["sustained"]) for r in ramp]
    assert f"sustained NPCs at 25 fps: {report['sustained_npcs']}" in printed
    c = report["compare"]
    # batching is what the two sidecars differ in: 3 streams per step vs one
    assert c["batched"]["mean_batch"] > 2.5 and c["one_at_a_time"]["mean_batch"] == 1.0
    assert c["throughput_batched_fps"] > 0 and c["throughput_one_at_a_time_fps"] > 0
    assert "batched vs one-at-a-time, 3 NPCs" in printed
    assert report["machine_start"]["load_average"]
