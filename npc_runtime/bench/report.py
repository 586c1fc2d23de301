"""The bench's outputs: report.json, curves.png and side-by-side videos (generated | truth).

`run_quality` is what `npc-runtime bench quality` calls: every performer on every case, scored
with the shipped probes, then written so a reader sees each score beside the ceiling's and the
floors'.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from npc_runtime.bench.cases import SUITE_VERSION, BenchCase
from npc_runtime.bench.performers import Performer
from npc_runtime.bench.probes import Probe
from npc_runtime.bench.runner import Observation, lip_reference, run_performers
from npc_runtime.world.performance import P
from npc_runtime.world.render import render_frames

log = logging.getLogger(__name__)


def _truth_frames(case: BenchCase, n: int) -> np.ndarray:
    if case.gt_perf is not None and case.identity is not None:
        return render_frames(case.identity, case.gt_perf[:n], case.size)
    return np.broadcast_to(case.references[0], (n, *case.references.shape[1:]))


def write_video(obs: Observation, path: Path) -> Path:
    """Generated | ground truth, with both audio tracks mixed in (MP4; GIF without ffmpeg)."""
    gen = obs.video
    truth = _truth_frames(obs.case, len(gen))
    if truth.shape[1:3] != gen.shape[1:3]:
        truth = np.stack([np.asarray(Image.fromarray(f).resize(gen.shape[2:0:-1]))
                          for f in truth])
    both = np.concatenate([gen, truth], axis=2)  # (V, H, 2W, 3)
    if shutil.which("ffmpeg") is None:
        path = path.with_suffix(".gif")
        imgs = [Image.fromarray(f) for f in both]
        imgs[0].save(path, save_all=True, append_images=imgs[1:],
                     duration=int(1000 / obs.case.fps), loop=0)
        return path
    path = path.with_suffix(".mp4")
    c = obs.case
    n_audio = len(gen) * (len(c.speak_audio) // c.num_frames)
    audio = np.clip(c.speak_audio[:n_audio] + 0.7 * c.listen_audio[:n_audio], -1, 1)
    wav = path.with_suffix(".wav")
    import soundfile as sf
    sf.write(wav, audio, 16_000)
    h, w = both.shape[1:3]
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", str(c.fps), "-i", "-", "-i", str(wav),
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-c:a", "aac",
           "-shortest", str(path)]
    subprocess.run(cmd, input=np.ascontiguousarray(both).tobytes(), check=True)
    wav.unlink()
    return path


def plot_curves(results: dict[str, list[Observation]], path: Path) -> Path:
    """Key curves: mouth vs truth, identity over time, sync by offset, nods while listening."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(13, 8))
    first = next(iter(results.values()))[0].case
    t = np.arange(first.num_frames) / first.fps
    span = t < 10
    ax[0, 0].plot(t[span], lip_reference(first)[span], "k", lw=2, label="ground truth jaw")
    for name, obs in results.items():
        o = obs[0]
        ax[0, 0].plot(t[span], o.perf_hat[span, P["jaw_open"]], label=name, alpha=0.8)
        csim = np.concatenate([m.metrics["identity_csim_per_s"] for m in obs])
        ax[0, 1].plot(np.arange(len(csim)), csim, label=name)
        ax[1, 0].plot(np.arange(-6, 7), np.mean([m.metrics["lip_sync_corr_by_offset"]
                                                  for m in obs], axis=0), "o-", label=name)
        ax[1, 1].plot(t, o.perf_hat[:, P["head_pitch"]], label=name, alpha=0.8)
    ax[1, 1].fill_between(t, 0, 1, where=first.listening, color="grey", alpha=0.2,
                          transform=ax[1, 1].get_xaxis_transform(), label="partner speaking")
    titles = [("mouth open (probe) vs ground truth, case 0", "s"),
              ("identity similarity to reference (cases concatenated)", "elapsed s"),
              ("lip-sync correlation by A/V offset", "offset (frames, + = video late)"),
              ("head pitch (probe): nods while listening", "s")]
    for a, (title, xl) in zip(ax.ravel(), titles):
        a.set_title(title)
        a.set_xlabel(xl)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def save_frames(results: dict[str, list[Observation]], path: Path, count: int = 6) -> Path:
    """A few frames of case 0 per performer (rows), ground truth on top, same instants."""
    first = next(iter(results.values()))[0]
    n = min(len(o[0].video) for o in results.values())
    at = np.linspace(0, n - 1, count).round().astype(int)
    rows = [_truth_frames(first.case, n)[at]] + [obs[0].video[at] for obs in results.values()]
    size = rows[1].shape[1:3] if len(rows) > 1 else rows[0].shape[1:3]
    rows = [np.stack([np.asarray(Image.fromarray(f).resize(size[::-1])) for f in r])
            if r.shape[1:3] != size else r for r in rows]
    grid = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
    Image.fromarray(grid).save(path)
    return path


# Rows of report.md: (aggregate key, what it measures, which way is better).
SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("lip_sync_corr", "lip sync: mouth-open corr. with truth", "higher"),
    ("lip_sync_offset_frames", "best A/V offset (frames)", "0"),
    ("identity_csim", "identity similarity to reference", "higher"),
    ("identity_rank1", "identity rank-1 on the suite", "higher"),
    ("drift_identity", "identity drift (first - last window)", "lower"),
    ("drift_image", "image-statistics drift", "lower"),
    ("emotion_accuracy_strong", "emotion accuracy, base emotions at intensity >= 0.5",
     "higher"),
    ("emotion_accuracy", "emotion accuracy, every labelled window (neutral included)", "higher"),
    ("emotion_corr", "expression corr. with tagged emotion", "higher"),
    ("listen_nod_contrast", "nods while partner speaks vs silence", "higher"),
    ("blink_rate_per_min", "blinks per minute", "~15"),
    ("listen_blink_gain_per_min", "blinks/min while partner speaks minus in silence", "higher"),
    ("quiet_mouth_open", "mouth open when not speaking", "lower"),
    ("flicker", "flicker", "lower"),
    ("chunk_boundary_ratio", "chunk-boundary jump / in-chunk change", "~1"),
    ("fpd", "performance distance to truth (FPD)", "lower"),
    ("fps", "frames per second of compute", "higher"),
)


def write_markdown(report: dict, path: Path,
                   checks: Sequence[tuple[str, bool, str]] = ()) -> Path:
    """report.md: the aggregate table (every performer side by side) and optional checks."""
    names = list(report["performers"])
    lines = [f"# LPM-Bench-mini report: suite `{report['suite']}` "
             f"(version {report['suite_version']}, {len(report['cases'])} cases)", "",
             "Written by the bench command from report.json; curves in "
             f"`{report.get('curves', 'curves.png')}`, frames (ground truth on top, then each "
             f"performer in this order: {', '.join(names)}) in `{report.get('frames', '')}`.", "",
             "| metric | better | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for key, label, better in SUMMARY_ROWS:
        vals = [report["performers"][n]["aggregate"].get(key) for n in names]
        if all(v is None for v in vals):
            continue
        cells = ["–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
                 for v in vals]
        lines.append(f"| {label} (`{key}`) | {better} | " + " | ".join(cells) + " |")
    settings = [(n, report["performers"][n].get("settings")) for n in names]
    if any(s for _, s in settings):
        lines += ["", "## Performers", ""]
        lines += [f"- `{n}`: " + ", ".join(f"{k} {v}" for k, v in s.items())
                  for n, s in settings if s]
    if checks:
        lines += ["", "## Checks", "", "| check | result | measured |", "|---|---|---|"]
        lines += [f"| {name} | {'PASS' if ok else 'FAIL'} | {detail} |"
                  for name, ok, detail in checks]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_quality(performers: Sequence[Performer], cases: Sequence[BenchCase], out_dir: str | Path,
                probe: Probe | None = None, suite: str = "custom", videos: bool = True,
                checks=None) -> dict:
    """Benchmark every performer on every case (case by case: `run_performers`); write
    report.json, report.md, curves.png, frames.png and videos. `checks(report) -> [(name, passed, detail)]` adds a pass/fail table
    to report.md (and report.json)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    probe = probe or Probe.load()
    report = {"bench": "LPM-Bench-mini", "suite": suite, "suite_version": SUITE_VERSION,
              "cases": [{"name": c.name, "frames": c.num_frames, "meta": {
                  k: v for k, v in c.meta.items() if k != "turns"}} for c in cases],
              "performers": {}}
    observed: dict[str, list[Observation]] = {}
    results = run_performers(performers, cases, probe)
    for performer in performers:
        result, obs = results[performer.name]
        if getattr(performer, "settings", None):
            result["settings"] = dict(performer.settings)
        report["performers"][performer.name] = result
        observed[performer.name] = obs
        if videos:
            vid = write_video(obs[0], out / f"side_by_side_{performer.name.replace(':', '_')}")
            result["video"] = vid.name
        log.info("%s: %s", performer.name, {k: round(v, 3) if isinstance(v, float) else v
                                            for k, v in result["aggregate"].items()})
    report["curves"] = plot_curves(observed, out / "curves.png").name
    report["frames"] = save_frames(observed, out / "frames.png").name
    passed = list(checks(report)) if checks else []
    if passed:
        report["checks"] = [{"check": n, "passed": ok, "measured": d} for n, ok, d in passed]
    (out / "report.json").write_text(json.dumps(report, indent=1))
    write_markdown(report, out / "report.md", passed)
    return report
