"""`npc-runtime train vae|base|online|ship`: the three training stages and shipping a checkpoint.

    npc-runtime train vae    --config configs/train/vae_tiny.yaml    --out runs/vae_tiny
    npc-runtime train base   --config configs/train/base_tiny.yaml   --out runs/base_tiny
    npc-runtime train online --config configs/train/online_tiny.yaml --out runs/online_tiny
    npc-runtime train reader --vae runs/base_f4e/export --out runs/reader_tiny   # latent reader
    npc-runtime train mouth --init runs/online_tiny/export --out runs/mouth_tiny  # + mouth track
    npc-runtime train editor --init runs/mouth_tiny --out runs/editor_tiny       # + mouth editor
    npc-runtime train nod --init runs/editor_tiny --out runs/nod_tiny            # + listening nods
    npc-runtime train steady --init runs/nod_tiny --out runs/steady_tiny         # + steady head
    npc-runtime train blink --init runs/steady_tiny --out runs/blink_tiny        # + blinks
    npc-runtime train expression --init runs/steady_tiny --out runs/expr_tiny    # + expression decoder
    npc-runtime train express --init runs/steady_tiny --out runs/express_tiny    # + expression editor
    npc-runtime train export runs/vae_tiny               # latest checkpoint -> runs/vae_tiny/export
    npc-runtime train ship runs/vae_tiny/export          # -> npc_runtime/weights/tiny

Add `--resume` to continue from the run's latest checkpoint (exactly: same weights as an
uninterrupted run), `--smoke` for a seconds-long micro run. Multi-process:
`torchrun --nproc_per_node N -m npc_runtime.cli train base ...` (DDP; gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import yaml

log = logging.getLogger(__name__)
SHIP_DIR = Path(__file__).resolve().parents[1] / "weights" / "tiny"


def _train(args: argparse.Namespace) -> int:
    from npc_runtime.train import TrainConfig, load_train_config, smoke, stage_class
    from npc_runtime.train.loop import train

    cfg = load_train_config(args.config) if args.config else TrainConfig(stage=args.stage)
    if cfg.stage != args.stage:
        raise SystemExit(f"{args.config} is a {cfg.stage!r} config, not {args.stage!r}")
    if args.smoke:
        cfg = smoke(cfg)
    changes = {k: v for k, v in (("steps", args.steps), ("threads", args.threads),
                                 ("device", args.device)) if v is not None}
    if changes:
        cfg = cfg.replace(**changes)
    summary = train(cfg, args.out, stage_class(args.stage), resume=args.resume,
                    progress=not args.no_progress)
    log.info("%s", json.dumps({k: v for k, v in summary.items() if k != "last"}, default=str))
    return 0


def _export(args: argparse.Namespace) -> int:
    """Export a run's latest checkpoint (e.g. a VAE good enough to ship before its last step)."""
    from npc_runtime.train import load_train_config, stage_class
    from npc_runtime.train.loop import export_latest

    run = Path(args.run)
    cfg = load_train_config(run / "train.yaml")
    info = export_latest(cfg, run, stage_class(cfg.stage), Path(args.dest or run / "export"))
    log.info("%s", json.dumps(info, default=str))
    return 0


def _reader(args: argparse.Namespace) -> int:
    """The Online stage's latent reader, on the latents of a checkpoint's VAE."""
    import dataclasses

    import torch

    from npc_runtime.train.flow import load_lpm
    from npc_runtime.train.reader import ReaderTrainConfig, save_reader, train_reader

    if args.threads:
        torch.set_num_threads(args.threads)
    lpm, info = load_lpm(args.vae, causal=False)
    if info.get("vae") != "trained":
        raise SystemExit(f"{args.vae}: its VAE is not trained (info: {info.get('vae')!r})")
    cfg = ReaderTrainConfig()
    changes = {k: v for k, v in (("train_frames", args.frames), ("epochs", args.epochs),
                                 ("test_frames", args.test_frames)) if v is not None}
    cfg = dataclasses.replace(cfg, **changes)
    reader, report = train_reader(lpm.vae, lpm.cfg.frame_size, cfg, progress=not args.no_progress)
    save_reader(reader, args.out, {**report, "vae_checkpoint": str(args.vae)})
    log.info("reader -> %s: %s", args.out, json.dumps(report["r2_heldout"]))
    return 0


def _counted_config(args: argparse.Namespace, default,
                    flags: tuple[tuple[str, str], ...] = (("steps", "steps"),
                                                          ("sessions", "train_sessions"),
                                                          ("test_sessions", "test_sessions"))):
    """`--threads` applied, and the given (flag, config field) pairs over a dataclass config's
    defaults where the flag was given (by default `--steps/--sessions/--test-sessions`, which the
    mouth track's and the editor's commands share)."""
    import dataclasses

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    changes = {field: getattr(args, flag) for flag, field in flags
               if getattr(args, flag) is not None}
    return dataclasses.replace(default, **changes)


def _mouth(args: argparse.Namespace) -> int:
    """Add a mouth track to a checkpoint and train it on the world's speech (audio only)."""
    from npc_runtime.train.mouth import MouthTrainConfig, train_mouth_checkpoint

    cfg = _counted_config(args, MouthTrainConfig())
    report = train_mouth_checkpoint(args.init, args.out, cfg, progress=not args.no_progress,
                                    track_from=args.track_from)
    log.info("mouth track -> %s: held-out r %s", args.out, json.dumps(report["r_heldout"]))
    return 0


def _editor(args: argparse.Namespace) -> int:
    """Add a mouth editor to a checkpoint with a mouth track; train it on counterfactual renders."""
    from npc_runtime.train.editor import EditorTrainConfig, train_editor_checkpoint

    cfg = _counted_config(args, EditorTrainConfig(emotion=not args.no_emotion))
    report = train_editor_checkpoint(args.init, args.out, cfg, progress=not args.no_progress)
    log.info("mouth editor -> %s: held-out %s", args.out, json.dumps(report["heldout"]))
    return 0


def _nod(args: argparse.Namespace) -> int:
    """Add listening nods (a nod track and a nod editor) to a checkpoint and train them."""
    from npc_runtime.train.nod import NodTrainConfig, train_nod_checkpoint

    cfg = _counted_config(args, NodTrainConfig(), tuple(
        (f, f) for f in ("track_steps", "track_sessions", "editor_steps", "editor_sessions")))
    report = train_nod_checkpoint(args.init, args.out, cfg, progress=not args.no_progress)
    log.info("listening nods -> %s: track %s; editor %s", args.out,
             json.dumps(report["track_heldout"]), json.dumps(report["editor_heldout"]))
    return 0


def _blink(args: argparse.Namespace) -> int:
    """Add blinks (a blink clock with fitted rates and a blink editor) to a checkpoint."""
    from npc_runtime.train.blink import BlinkTrainConfig, train_blink_checkpoint

    cfg = _counted_config(args, BlinkTrainConfig(), tuple(
        (f, f) for f in ("rate_sessions", "rate_test_sessions", "editor_steps",
                         "editor_sessions")))
    report = train_blink_checkpoint(args.init, args.out, cfg, progress=not args.no_progress)
    log.info("blinks -> %s: rates %s per min; clock %s; editor %s", args.out,
             report["rates_per_min"], json.dumps(report["clock_heldout"]),
             json.dumps(report["editor_heldout"]))
    return 0


def _steady(args: argparse.Namespace) -> int:
    """Add a steady head (a pitch reader steering the nod editor) to a checkpoint."""
    from npc_runtime.train.steady import SteadyTrainConfig, train_steady_checkpoint

    cfg = _counted_config(args, SteadyTrainConfig(),
                          (("steps", "steps"), ("sessions", "sessions")))
    report = train_steady_checkpoint(args.init, args.out, cfg, progress=not args.no_progress)
    log.info("steady head -> %s: held-out %s", args.out, json.dumps(report["heldout"]))
    return 0


def _expression(args: argparse.Namespace) -> int:
    """Give a checkpoint an expression decoder (its VAE decoder reads the emotion tags)."""
    from npc_runtime.train.expression import ExpressionTrainConfig, train_expression_checkpoint

    cfg = _counted_config(args, ExpressionTrainConfig(),
                          (("steps", "steps"), ("sessions", "sessions")))
    report = train_expression_checkpoint(args.init, args.out, cfg,
                                         progress=not args.no_progress)
    log.info("expression decoder -> %s: held-out %s", args.out, json.dumps(report["heldout"]))
    return 0


def _express(args: argparse.Namespace) -> int:
    """Give a checkpoint an expression editor (redraws the tagged frames' expressions)."""
    from npc_runtime.train.expression_edit import (ExpressionEditTrainConfig,
                                                   train_expression_edit_checkpoint)

    cfg = _counted_config(args, ExpressionEditTrainConfig(),
                          (("steps", "steps"), ("sessions", "sessions"), ("keep", "keep"),
                           ("latent_weight", "latent_weight"), ("drift", "drift"),
                           ("reference", "reference")))
    report = train_expression_edit_checkpoint(args.init, args.out, cfg,
                                              progress=not args.no_progress)
    log.info("expression editor -> %s: held-out %s", args.out, json.dumps(report["heldout"]))
    return 0


def _bench(args: argparse.Namespace) -> int:
    """LPM-Bench-mini on an Online LPM export (streaming path), optionally beside its teacher."""
    from npc_runtime.bench.cases import build_suite, world_case
    from npc_runtime.bench.performers import GroundTruthPerformer
    from npc_runtime.bench.probes import Probe
    from npc_runtime.bench.report import run_quality
    from npc_runtime.train.checks import must_show
    from npc_runtime.train.performers import (BaseLPMPerformer, OnlineLPMPerformer,
                                              VAERoundTripPerformer)

    if args.vae_roundtrip and not (args.online or args.base):
        raise SystemExit("--vae-roundtrip needs --online or --base (whose VAE to use)")
    performers = [GroundTruthPerformer()] if args.ground_truth else []
    if args.vae_roundtrip:
        # What the LPM's own VAE keeps of the truth: the ceiling for anything it decodes.
        performers.append(VAERoundTripPerformer(args.online or args.base))
    if args.online:
        performers.append(OnlineLPMPerformer(args.online))
    if args.base:
        performers.append(BaseLPMPerformer(args.base, guidance=args.guidance,
                                           steps=args.base_steps))
    cases = build_suite(args.suite, long_stream_s=args.long_stream_s)
    probe = Probe.load()
    long_report = None
    longs = [c for c in cases if c.name.startswith("long-")]
    if args.online and args.long_stream_s and not longs:
        s = args.long_stream_s          # the full suite's long stream, for a suite without one
        longs = [world_case(500, s, name=f"long-00-{int(s)}s")]
    if args.online and longs:
        # Stability is the Online LPM's must-show: its long stream(s) (always the full suite's)
        # run through it alone, in their own report, so the slow Base LPM (hours on 10
        # minutes) is not run on them.
        cases = [c for c in cases if not c.name.startswith("long-")]
        long_report = run_quality([OnlineLPMPerformer(args.online)], longs,
                                  Path(args.out) / "long_stream", probe, suite="full-long")
    report = run_quality(performers, cases, args.out, probe, suite=args.suite,
                         checks=(lambda r: must_show(r, long_report)) if args.online else None)
    for check in report.get("checks", []):
        log.info("%s %s: %s", "PASS" if check["passed"] else "FAIL", check["check"],
                 check["measured"])
    log.info("%s", json.dumps({n: r["aggregate"] for n, r in report["performers"].items()},
                              indent=1))
    return 0


BENCH_KEYS = ("lip_sync_corr", "lip_sync_offset_frames", "identity_csim",
              "emotion_accuracy_strong", "emotion_accuracy", "listen_nod_contrast",
              "listen_blink_gain_per_min", "quiet_mouth_open", "flicker", "fps")


def bench_info(report: dict, source: str) -> dict:
    """Flat `bench_*` entries (the Online LPM's scores, the checks passed) for model.yaml."""
    perf = report.get("performers", {})
    if "online_lpm" not in perf:
        raise SystemExit(f"{source}: no online_lpm performer in this bench report")
    if report.get("suite") == "dev":
        raise SystemExit(f"{source}: a dev-suite report (model selection) is not a bench "
                         "score to ship; run the quick or full suite")
    agg = perf["online_lpm"]["aggregate"]
    out = {"bench": f"LPM-Bench-mini {report['suite']} v{report['suite_version']} ({source})"}
    out.update({f"bench_{k}": round(float(agg[k]), 3) for k in BENCH_KEYS if k in agg})
    if "ground_truth" in perf:
        out["bench_ceiling_identity_csim"] = round(
            float(perf["ground_truth"]["aggregate"]["identity_csim"]), 3)
    checks = report.get("checks", [])
    if checks:
        failed = [c["check"] for c in checks if not c["passed"]]
        out["bench_checks_passed"] = f"{len(checks) - len(failed)}/{len(checks)}"
        out["bench_checks_failed"] = "; ".join(failed) or "none"
    return out


def _with_decoder(src: Path, vae_dir: str, info: dict):
    """The LPM of `src` with the VAE decoder of `vae_dir` (same latent space, checked)."""
    from npc_runtime.train.flow import load_lpm
    from npc_runtime.train.vae import swap_decoder

    lpm, _ = load_lpm(src, causal=True)
    donor, donor_info = load_lpm(vae_dir, causal=True)
    try:
        swap_decoder(lpm.vae, donor.vae)
    except ValueError as e:
        raise SystemExit(f"--vae {vae_dir}: {e} (the LPM is {src})") from e
    info["vae_decoder"] = (f"{vae_dir} (decoder-only fine-tune, {donor_info.get('vae_steps')} "
                           f"steps)")
    if donor_info.get("psnr_db") is not None:
        info["vae_psnr_db"] = donor_info["psnr_db"]
    return lpm


def _ship(args: argparse.Namespace) -> int:
    """Copy an export (model.safetensors + model.yaml) into the package, after checking it."""
    from npc_runtime.checkpoint import read_meta
    from npc_runtime.pipeline import PerformanceModel

    src, dest = Path(args.export), Path(args.dest)
    cfg, trained, info = read_meta(src)
    PerformanceModel.from_checkpoint(src)          # loads and validates every tensor
    gain = cfg.stream.emotion_gain
    if args.emotion_gain is not None:
        try:
            gain = cfg.with_emotion_gain(args.emotion_gain).stream.emotion_gain
        except ValueError as e:
            raise SystemExit(f"--emotion-gain: {e}") from e
    if args.bench:  # read before anything is copied: a bad report changes nothing
        report = json.loads(Path(args.bench).read_text())
        info.update(bench_info(report, args.bench))
        benched = report["performers"]["online_lpm"].get("settings", {}).get("emotion_gain", 1.0)
        if benched != gain:
            raise SystemExit(f"{args.bench} benched the stream at emotion_gain {benched}; the "
                             f"shipped checkpoint would stream at {gain} (--emotion-gain)")
    merged = _with_decoder(src, args.vae, info) if args.vae else None
    dest.mkdir(parents=True, exist_ok=True)
    if merged is not None:
        from npc_runtime.checkpoint import save_checkpoint
        save_checkpoint(dest, merged, cfg, trained=trained, info=info)
    else:
        for name in ("model.safetensors", "model.yaml"):
            shutil.copyfile(src / name, dest / name)
    if args.bench or args.emotion_gain is not None:
        # The bench's verdict travels with the weights (ServerInfo.model.info shows it), and
        # the stream's emotion gain with the config it belongs to.
        meta = yaml.safe_load((dest / "model.yaml").read_text())
        meta["info"] = info
        meta["config"].setdefault("stream", {})["emotion_gain"] = gain
        (dest / "model.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    size = (dest / "model.safetensors").stat().st_size / 2**20
    log.info("shipped %s (%s, trained=%s, %.1f MiB) -> %s; info: %s", src, cfg.name, trained,
             size, dest, json.dumps(info))
    return 0


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train VAE / Base LPM / Online LPM; ship")
    sub = train.add_subparsers(dest="train_command", required=True)
    for stage, text in (("vae", "stage 1: the VAE on world renders"),
                        ("base", "stage 2: the bidirectional Base LPM (flow matching)"),
                        ("online", "stage 3: distil the causal few-step Online LPM")):
        p = sub.add_parser(stage, help=text)
        p.add_argument("--config", help="train config YAML (configs/train/*.yaml)")
        p.add_argument("--out", required=True, help="run directory (checkpoints, logs, export)")
        p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
        p.add_argument("--smoke", action="store_true", help="micro model, a few steps (seconds)")
        p.add_argument("--steps", type=int, help="override the config's total steps")
        p.add_argument("--threads", type=int, help="override torch CPU threads (0 = default)")
        p.add_argument("--device", help="override device (auto, cpu, cuda)")
        p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
        p.set_defaults(func=_train, stage=stage)
    reader = sub.add_parser("reader", help="the Online stage's latent reader (minutes)")
    reader.add_argument("--vae", required=True, help="a checkpoint whose (trained) VAE encodes")
    reader.add_argument("--out", required=True, help="output directory")
    reader.add_argument("--frames", type=int, help="training renders (default 16000)")
    reader.add_argument("--test-frames", type=int, help="held-out renders (default 1000)")
    reader.add_argument("--epochs", type=int, help="default 8")
    reader.add_argument("--threads", type=int, help="torch CPU threads")
    reader.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    reader.set_defaults(func=_reader)
    mouth = sub.add_parser("mouth", help="add a mouth track to a checkpoint (audio only, minutes)")
    mouth.add_argument("--init", required=True, help="an LPM checkpoint (or run) to add it to")
    mouth.add_argument("--out", required=True, help="output checkpoint directory")
    mouth.add_argument("--track-from", help="copy the trained track of this checkpoint instead")
    mouth.add_argument("--steps", type=int, help="default 8000")
    mouth.add_argument("--sessions", type=int, help="30 s training sessions (default 480)")
    mouth.add_argument("--test-sessions", type=int, help="held-out sessions (default 16)")
    mouth.add_argument("--threads", type=int, help="torch CPU threads")
    mouth.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    mouth.set_defaults(func=_mouth)
    editor = sub.add_parser("editor", help="add a mouth editor to a checkpoint with a mouth "
                                           "track (counterfactual renders, minutes)")
    editor.add_argument("--init", required=True, help="an LPM checkpoint (or run) with a track")
    editor.add_argument("--out", required=True, help="output checkpoint directory")
    editor.add_argument("--steps", type=int, help="default 3000")
    editor.add_argument("--sessions", type=int, help="8 s training sessions (default 200)")
    editor.add_argument("--test-sessions", type=int, help="held-out sessions (default 8)")
    editor.add_argument("--no-emotion", action="store_true",
                        help="condition on the mouth alone, not on the emotion weights too")
    editor.add_argument("--threads", type=int, help="torch CPU threads")
    editor.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    editor.set_defaults(func=_editor)
    nod = sub.add_parser("nod", help="add listening nods to a checkpoint: a nod track (audio "
                                     "only) and a nod editor (counterfactual renders), minutes")
    nod.add_argument("--init", required=True, help="an LPM checkpoint (or run) to add them to")
    nod.add_argument("--out", required=True, help="output checkpoint directory")
    nod.add_argument("--track-steps", type=int, help="default 1500")
    nod.add_argument("--track-sessions", type=int, help="30 s dialogue sessions (default 400)")
    nod.add_argument("--editor-steps", type=int, help="default 2000")
    nod.add_argument("--editor-sessions", type=int, help="8 s rendered sessions (default 120)")
    nod.add_argument("--threads", type=int, help="torch CPU threads")
    nod.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    nod.set_defaults(func=_nod)

    blink = sub.add_parser("blink", help="add blinks to a checkpoint with a mouth editor: a "
                                         "blink clock (rates fitted on dialogue) and a blink "
                                         "editor (counterfactual renders), minutes")
    blink.add_argument("--init", required=True, help="an LPM checkpoint (or run) to add them to")
    blink.add_argument("--out", required=True, help="output checkpoint directory")
    blink.add_argument("--rate-sessions", type=int, help="30 s dialogue sessions (default 300)")
    blink.add_argument("--rate-test-sessions", type=int, help="held-out ones (default 100)")
    blink.add_argument("--editor-steps", type=int, help="default 2000")
    blink.add_argument("--editor-sessions", type=int, help="8 s rendered sessions (default 120)")
    blink.add_argument("--threads", type=int, help="torch CPU threads")
    blink.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    blink.set_defaults(func=_blink)

    steady = sub.add_parser("steady", help="add a steady head to a checkpoint with listening "
                                           "nods: a pitch reader on renders, minutes")
    steady.add_argument("--init", required=True, help="an LPM checkpoint (or run) with nods")
    steady.add_argument("--out", required=True, help="output checkpoint directory")
    steady.add_argument("--steps", type=int, help="default 3000")
    steady.add_argument("--sessions", type=int, help="8 s rendered sessions (default 320)")
    steady.add_argument("--threads", type=int, help="torch CPU threads")
    steady.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    steady.set_defaults(func=_steady)
    expression = sub.add_parser("expression", help="give a checkpoint an expression decoder "
                                                   "(the VAE decoder reads the emotion tags), "
                                                   "decoder-only fine-tune, minutes")
    expression.add_argument("--init", required=True, help="an LPM checkpoint (or run)")
    expression.add_argument("--out", required=True, help="output checkpoint directory")
    expression.add_argument("--steps", type=int, help="default 3000")
    expression.add_argument("--sessions", type=int, help="8 s rendered sessions (default 200)")
    expression.add_argument("--threads", type=int, help="torch CPU threads")
    expression.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    expression.set_defaults(func=_expression)
    express = sub.add_parser("express", help="give a checkpoint an expression editor "
                             "(redraws each tagged frame's expression in latent space)")
    express.add_argument("--init", required=True, help="an LPM checkpoint (or run)")
    express.add_argument("--out", required=True, help="output checkpoint directory")
    express.add_argument("--steps", type=int, help="default 2000")
    express.add_argument("--sessions", type=int, help="8 s rendered sessions (default 160)")
    express.add_argument("--keep", type=float, help="share of samples already as tagged "
                         "(default 0.15)")
    express.add_argument("--latent-weight", type=float, help="weight of the latent term "
                         "(default 0.1)")
    express.add_argument("--drift", type=float, help="share of inputs with the student's "
                         "drift, eyes narrowed and brows off (default 0)")
    express.add_argument("--reference", action="store_true", help="the editor also sees the "
                         "NPC's first reference, its resting face (expression_edit.reference)")
    express.add_argument("--threads", type=int, help="torch CPU threads")
    express.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    express.set_defaults(func=_express)
    export = sub.add_parser("export", help="export a run's latest checkpoint (mid-run)")
    export.add_argument("run", help="a run directory (train.yaml + checkpoints/)")
    export.add_argument("--dest", help="default: RUN/export")
    export.set_defaults(func=_export)
    bench = sub.add_parser("bench", help="LPM-Bench-mini on trained Online/Base exports")
    bench.add_argument("--online", help="Online LPM export dir (streamed through the cache)")
    bench.add_argument("--base", help="Base LPM export dir (sampled with its full steps)")
    bench.add_argument("--guidance", type=float, default=1.0, help="Base LPM CFG scale")
    bench.add_argument("--vae-roundtrip", action="store_true",
                       help="add the truth through the model's VAE (the decoder's ceiling)")
    bench.add_argument("--base-steps", type=int, default=None,
                       help="Base LPM Euler steps (default: its config's stream.base_steps)")
    bench.add_argument("--ground-truth", action="store_true", help="add the renderer ceiling")
    bench.add_argument("--suite", default="quick", help="quick | full | dev (model selection, not reported)")
    bench.add_argument("--long-stream-s", type=float, default=None,
                       help="length of the long stream (stability); with a suite that has "
                            "none (quick), one is run for the Online LPM alone")
    bench.add_argument("--out", required=True)
    bench.set_defaults(func=_bench)
    ship = sub.add_parser("ship", help="copy an export into the package as the default model")
    ship.add_argument("export", help="an export directory (model.safetensors + model.yaml)")
    ship.add_argument("--dest", default=str(SHIP_DIR), help="default: npc_runtime/weights/tiny")
    ship.add_argument("--bench", help="a `train bench` report.json whose Online LPM scores and "
                                      "checks are recorded in the shipped model.yaml")
    ship.add_argument("--vae", help="swap in this checkpoint's VAE decoder (a decoder-only "
                                    "fine-tune of the same VAE: the latent space must match)")
    ship.add_argument("--emotion-gain", type=float,
                      help="stream.emotion_gain of the shipped config (docs/model.md); default: "
                           "the export's own. A --bench report must have streamed at this gain")
    ship.set_defaults(func=_ship)
