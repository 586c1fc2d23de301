"""`npc-runtime play`: the reference client. Streams WAV files into a running sidecar at
real-time pace, writes the frames it gets back as MP4 (with the audio) or GIF, and a JSON timing
report (frames, fps, time to first frame, pts alignment, audio-to-frame latency).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import soundfile as sf

from npc_runtime._proto import emotion_pb2, perform_pb2, runtime_pb2_grpc

log = logging.getLogger(__name__)
_EMOTION = re.compile(r"^(?P<tag>[A-Za-z0-9_-]+)(:(?P<i>[0-9.]+))?@(?P<t>[0-9.]+)(~(?P<tr>[0-9.]+))?$")
_FORMATS = {"bc1": perform_pb2.TEXTURE_FORMAT_BC1, "rgba8": perform_pb2.TEXTURE_FORMAT_RGBA8}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("play", help="stream WAVs into a running sidecar, save the video",
                              description=__doc__.splitlines()[0])
    p.add_argument("--server", default="127.0.0.1:50051", help="HOST:PORT")
    p.add_argument("--npc", required=True, help="NPC id")
    p.add_argument("--speak", required=True, type=Path, help="the NPC's dialogue line (WAV)")
    p.add_argument("--listen", type=Path, help="the player's voice (WAV), from time 0")
    p.add_argument("--emotion", action="append", default=[], metavar="TAG[:I]@SECONDS[~TRANS]",
                   help="emotion cue, e.g. happy:0.8@1.5~0.4 (repeatable)")
    p.add_argument("--out", required=True, type=Path, help="OUT.mp4 or OUT.gif")
    p.add_argument("--report", type=Path, help="write the JSON timing report here")
    p.add_argument("--texture", choices=sorted(_FORMATS), default="bc1")
    p.add_argument("--chunk-ms", type=float, default=40.0, help="audio message length")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=int, default=2, help="upscale factor of the output video")
    p.set_defaults(func=run)


@dataclass
class Cue:
    tag: str
    intensity: float
    at_s: float
    transition_s: float


def parse_cue(text: str) -> Cue:
    m = _EMOTION.match(text)
    if not m:
        raise ValueError(f"--emotion {text!r}: expected TAG[:INTENSITY]@SECONDS[~TRANSITION]")
    return Cue(m["tag"], float(m["i"] or 1.0), float(m["t"]), float(m["tr"] or 0.3))


def read_pcm16(path: Path) -> tuple[bytes, int, float]:
    """A WAV -> (mono PCM16 bytes at its own rate, rate, seconds); the server resamples."""
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    return (np.clip(mono, -1, 1) * 32767).astype("<i2").tobytes(), rate, len(mono) / rate


@dataclass
class Received:
    started: perform_pb2.PerformanceStarted | None = None
    frames: list[tuple[float, perform_pb2.Frame]] = field(default_factory=list)
    events: list[tuple[float, perform_pb2.PerformanceEvent]] = field(default_factory=list)
    audio_t0: float | None = None   # monotonic time the first audio chunk was sent (pts 0)
    open_t: float = 0.0
    status: str = "OK"


def _requests(args, tracks, cues, rx: Received, stop_event: threading.Event):
    yield perform_pb2.PerformRequest(start=perform_pb2.StartPerformance(
        npc_id=args.npc, texture_format=_FORMATS[args.texture], seed=args.seed,
        client_name="npc-runtime play"))
    for c in cues:
        yield perform_pb2.PerformRequest(emotion=perform_pb2.EmotionCue(
            emotion=emotion_pb2.Emotion(tag=emotion_pb2.TagEmotion(name=c.tag,
                                                                   intensity=c.intensity)),
            transition_s=c.transition_s, pts_us=int(c.at_s * 1e6)))
    speak_s = tracks[perform_pb2.AUDIO_CHANNEL_SPEAK][2]
    yield perform_pb2.PerformRequest(line=perform_pb2.LineMarker(
        line_id=args.speak.stem, start_pts_us=0, end_pts_us=int(speak_s * 1e6)))
    chunk_s = args.chunk_ms / 1000.0
    total_s = max(t[2] for t in tracks.values())
    rx.audio_t0 = time.monotonic()
    for i in range(math.ceil(total_s / chunk_s)):
        # absolute schedule: no drift however long the line
        delay = rx.audio_t0 + i * chunk_s - time.monotonic()
        if delay > 0 and stop_event.wait(delay):
            return
        for channel, (pcm, rate, _) in tracks.items():
            n = int(round(chunk_s * rate))
            piece = pcm[2 * i * n:2 * (i + 1) * n]
            if piece:
                yield perform_pb2.PerformRequest(audio=perform_pb2.AudioChunk(
                    channel=channel, pcm16=piece, sample_rate=rate, pts_us=i * n * 1_000_000 // rate))
    yield perform_pb2.PerformRequest(stop=perform_pb2.StopPerformance())


def stream(args, stub) -> Received:
    tracks = {perform_pb2.AUDIO_CHANNEL_SPEAK: read_pcm16(args.speak)}
    if args.listen:
        tracks[perform_pb2.AUDIO_CHANNEL_LISTEN] = read_pcm16(args.listen)
    cues = [parse_cue(c) for c in args.emotion]
    rx, stop_event = Received(), threading.Event()
    rx.open_t = time.monotonic()
    call = stub.Perform(_requests(args, tracks, cues, rx, stop_event))
    try:
        for msg in call:
            now = time.monotonic()
            kind = msg.WhichOneof("message")
            if kind == "started":
                rx.started = msg.started
                log.info("stream %s: %dx%d %s at %d fps, latency %.0f ms", msg.started.session_id,
                         msg.started.width, msg.started.height,
                         perform_pb2.TextureFormat.Name(msg.started.texture_format),
                         msg.started.fps, msg.started.latency_us / 1e3)
            elif kind == "frame":
                rx.frames.append((now, msg.frame))
                if msg.frame.index % 50 == 0:
                    log.info("frame %d (pts %.2f s)", msg.frame.index, msg.frame.pts_us / 1e6)
            elif kind == "event":
                rx.events.append((now, msg.event))
                log.info("event %s at %.2f s %s",
                         perform_pb2.PerformanceEvent.Kind.Name(msg.event.kind),
                         msg.event.pts_us / 1e6, msg.event.message)
    except grpc.RpcError as e:
        rx.status = f"{e.code().name}: {e.details()}"
        raise
    finally:
        stop_event.set()
    return rx


def report(rx: Received, audio_s: float) -> dict:
    if not rx.frames:
        return {"frames": 0, "status": rx.status}
    fps = rx.started.fps
    times = np.array([t for t, _ in rx.frames])
    idx = np.array([f.index for _, f in rx.frames])
    pts = np.array([f.pts_us for _, f in rx.frames])
    span = times[-1] - times[0]
    latency = times - (rx.audio_t0 + pts / 1e6)      # arrival vs the client's audio clock
    return {
        "status": rx.status,
        "frames": int(len(idx)),
        "expected_frames": int(math.ceil(audio_s * fps)),
        "dropped_frames": int(idx[-1] - idx[0] + 1 - len(idx)),
        "fps": round(float((len(idx) - 1) / span), 3) if span > 0 else None,
        "time_to_first_frame_s": round(float(times[0] - rx.open_t), 4),
        "pts_monotonic": bool(np.all(np.diff(pts) > 0)),
        "pts_aligned": bool(np.all(pts == idx * 1_000_000 // fps)),
        "announced_latency_s": rx.started.latency_us / 1e6,
        "latency_s": {"mean": round(float(latency.mean()), 4),
                      "p95": round(float(np.percentile(latency, 95)), 4),
                      "max": round(float(latency.max()), 4)},
        "arrival_jitter_ms": round(float(np.std(np.diff(times)) * 1e3), 3),
        "speaking_frames": int(sum(f.speaking for _, f in rx.frames)),
        "listening_frames": int(sum(f.listening for _, f in rx.frames)),
        "events": [perform_pb2.PerformanceEvent.Kind.Name(e.kind) for _, e in rx.events],
    }


def decode_frames(rx: Received) -> list[np.ndarray]:
    """Payloads -> RGB frames, one per frame period (a dropped frame repeats the previous)."""
    from npc_runtime.texture import TextureFormat, decode
    fmt = TextureFormat.BC1 if rx.started.texture_format == perform_pb2.TEXTURE_FORMAT_BC1 \
        else TextureFormat.RGBA8
    out: list[np.ndarray] = []
    for _, f in rx.frames:
        img = decode(f.payload, fmt, f.width, f.height)
        while len(out) < f.index:
            out.append(out[-1] if out else img)
        out.append(img)
    return out


def write_video(frames: list[np.ndarray], fps: int, out: Path, scale: int,
                audio: list[Path]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if scale > 1:
        frames = [f.repeat(scale, 0).repeat(scale, 1) for f in frames]
    if out.suffix.lower() == ".gif":
        from PIL import Image
        images = [Image.fromarray(f) for f in frames]
        images[0].save(out, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
        return
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"--out must end in .mp4 or .gif, got {out.name}")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg not found: install it or write a .gif")
    h, w = frames[0].shape[:2]
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
    for a in audio:
        cmd += ["-i", str(a)]
    if len(audio) > 1:
        cmd += ["-filter_complex", f"amix=inputs={len(audio)}:normalize=0[a]", "-map", "0:v",
                "-map", "[a]"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18"]
    if audio:
        cmd += ["-c:a", "aac"]
    cmd += [str(out)]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=err)
        proc.stdin.write(b"".join(np.ascontiguousarray(f).tobytes() for f in frames))
        proc.stdin.close()
        if proc.wait() != 0:
            err.seek(0)
            raise RuntimeError(f"ffmpeg failed: {err.read().decode(errors='replace')[-500:]}")


def run(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() not in (".mp4", ".gif"):
        log.error("--out must end in .mp4 or .gif")
        return 2
    try:
        for c in args.emotion:
            parse_cue(c)
    except ValueError as e:
        log.error("%s", e)
        return 2
    with grpc.insecure_channel(args.server) as channel:
        stub = runtime_pb2_grpc.NpcRuntimeStub(channel)
        try:
            rx = stream(args, stub)
        except grpc.RpcError as e:
            log.error("Perform failed: %s: %s", e.code().name, e.details())
            return 1
    audio_s = max(sf.info(str(p)).duration for p in (args.speak, args.listen) if p)
    rep = report(rx, audio_s)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(rep, indent=2))
    if not rx.frames:
        log.error("no frames received")
        return 1
    write_video(decode_frames(rx), rx.started.fps, args.out, args.scale,
                [p for p in (args.speak, args.listen) if p])
    log.info("wrote %s: %d frames, %.2f fps, first frame after %.3f s", args.out, rep["frames"],
             rep["fps"] or 0, rep["time_to_first_frame_s"])
    return 0
