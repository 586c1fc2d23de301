"""End to end through a real grpc.aio server on loopback, with the real model: register an NPC,
perform with SPEAK and LISTEN audio and two emotion cues, check pacing, timeline alignment,
emotion track, events, and that BC1 payloads decode to the frames the model produced."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
import texture2ddecoder

from npc_runtime import texture
from npc_runtime._proto import emotion_pb2, perform_pb2
from npc_runtime.emotions import DEFAULT_VOCABULARY as VOCAB
from npc_runtime.pipeline import ChunkRequest

from .helpers import ServerThread, audio_msg, image_bytes, register, start_msg

log = logging.getLogger(__name__)
FPS, FRAME_US = 25, 40_000
SPEAK_RATE, LISTEN_RATE = 22050, 48000
# SPEAK: tone 0-1.6 s, silence 1.6-2.6 s, tone 2.6-4.4 s. LISTEN: tone 2.0-4.4 s (pts-placed).
SPEAK_ON = [(0.0, 1.6), (2.6, 4.4)]
LISTEN_ON = [(2.0, 4.4)]
TOTAL_S = 4.4
# The in-process client, gRPC threads and the engine share the GIL and two cores: the 25 fps
# pacing assertions need the model's chunk step (+ BC1) to fit in this share of the 160 ms
# chunk period on this host. Measured here, not assumed: hosts differ ~2x (an AVX2-only
# 2-core VM runs the tiny model at half the speed of an AVX-512 one).
PACING_HEADROOM = 0.75


class RecordingModel:
    """The real model, remembering every chunk it produced (to compare payloads against)."""

    def __init__(self, model) -> None:
        self._model = model
        self.outputs: list[np.ndarray] = []
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._model, name)

    def step(self, requests):
        out = self._model.step(requests)
        with self._lock:
            self.outputs.extend(out)
        return out


def _tone(seconds: float, rate: int, freq: float, on: list[tuple[float, float]]) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    gate = np.zeros_like(t)
    for a, b in on:
        gate[(t >= a) & (t < b)] = 1.0
    return (0.3 * gate * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")


def _requests(npc_id: str, t_audio0: list):
    speak = _tone(TOTAL_S, SPEAK_RATE, 180.0, SPEAK_ON)
    listen = _tone(TOTAL_S, LISTEN_RATE, 330.0, [(0.0, TOTAL_S)])[int(2.0 * LISTEN_RATE):]
    yield start_msg(npc_id, texture_format=perform_pb2.TEXTURE_FORMAT_BC1, seed=7)
    yield perform_pb2.PerformRequest(emotion=perform_pb2.EmotionCue(
        emotion=emotion_pb2.Emotion(tag=emotion_pb2.TagEmotion(name="happy", intensity=0.8)),
        transition_s=0.5, pts_us=1_000_000))
    sad = VOCAB.tag_vector("sad", 0.6)
    yield perform_pb2.PerformRequest(emotion=perform_pb2.EmotionCue(
        emotion=emotion_pb2.Emotion(weights=emotion_pb2.EmotionWeights(values=sad.tolist())),
        transition_s=0.0, pts_us=3_000_000))
    yield perform_pb2.PerformRequest(line=perform_pb2.LineMarker(
        line_id="greeting", start_pts_us=0, end_pts_us=1_600_000, text="Well met."))
    chunk_s = 0.04
    t_audio0.append(time.monotonic())
    for i in range(int(TOTAL_S / chunk_s)):
        delay = t_audio0[0] + i * chunk_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        n = int(chunk_s * SPEAK_RATE)
        yield audio_msg(speak[i * n:(i + 1) * n].tobytes(), rate=SPEAK_RATE)
        t = i * chunk_s
        if t >= 2.0:                       # player starts talking at 2 s, placed by pts
            m = int(chunk_s * LISTEN_RATE)
            j = i - int(2.0 / chunk_s)
            yield audio_msg(listen[j * m:(j + 1) * m].tobytes(),
                            perform_pb2.AUDIO_CHANNEL_LISTEN, LISTEN_RATE,
                            pts_us=int(round(t * 1e6)))
    yield perform_pb2.PerformRequest(stop=perform_pb2.StopPerformance())


def _inside(pts_us: int, spans, margin_us: int = FRAME_US) -> bool | None:
    """True/False if the frame [pts, pts+40ms) is clearly inside/outside the spans, else None."""
    a, b = pts_us, pts_us + FRAME_US
    for lo, hi in spans:
        lo, hi = lo * 1e6, hi * 1e6
        if a >= lo + margin_us and b <= hi - margin_us:
            return True
        if b > lo - margin_us and a < hi + margin_us:
            return None
    return False


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def chunk_cost_s(model, n: int = 4) -> float:
    """Median seconds of one chunk step + BC1 encode of the real model on this host (a
    throwaway session, nothing else running)."""
    sid = model.open_session(model.encode_identity(
        np.zeros((1, model.frame_size, model.frame_size, 3), np.uint8)))
    try:
        n_audio, c = model.audio_window, model.chunk_frames
        emotion = np.tile(VOCAB.neutral(), (c, 1)).astype(np.float32)
        quiet = np.zeros(n_audio, np.float32)
        times = []
        for i in range(n + 1):
            t0 = time.perf_counter()
            frames = model.step([ChunkRequest(sid, quiet, quiet, emotion)])[0]
            texture.encode(frames, texture.TextureFormat.BC1)
            if i:                                                  # the first one warms up
                times.append(time.perf_counter() - t0)
        return float(np.median(times))
    finally:
        model.close_session(sid)


def test_register_and_perform_end_to_end(tmp_path, model):
    cost_s = chunk_cost_s(model)
    # Below the headroom the host, not the server, decides the frame rate: the pacing checks
    # (25 +- 1 fps, lateness) are then reported as skipped at the end, after every other check
    # of the stream has run; the real model's speed itself is benchmarks/bench_model.py's.
    paced_host = cost_s <= PACING_HEADROOM * model.chunk_frames / FPS
    # On a host that cannot keep the pace the stream lags; past stream.max_lag_s (1 s) the
    # session would rightly skip ahead (FRAMES_DROPPED, server/session.py). Here the lag
    # bound is raised past the stream's length so every frame still arrives and is checked.
    overrides = {} if paced_host else {"stream__max_lag_s": TOTAL_S + 5.0}
    recorder = RecordingModel(model)
    with ServerThread(tmp_path, recorder, warmup_chunks=2, **overrides) as srv:
        channel, stub = srv.stub()
        register(stub, "innkeeper", reference_images=[image_bytes(120, 90, 1),
                                                      image_bytes(64, 64, 2, "JPEG")])
        recorder.outputs.clear()                      # drop the warm-up chunks
        t_audio0: list[float] = []
        t_open = time.monotonic()
        frames, events, started = [], [], None
        for msg in stub.Perform(_requests("innkeeper", t_audio0), timeout=60):
            now = time.monotonic()
            kind = msg.WhichOneof("message")
            if kind == "started":
                started = msg.started
            elif kind == "frame":
                frames.append((now, msg.frame))
            else:
                events.append(msg.event)
        channel.close()

    assert started is not None and started.fps == FPS and started.width == model.frame_size
    times = np.array([t for t, _ in frames])
    idx = np.array([f.index for _, f in frames])
    pts = np.array([f.pts_us for _, f in frames])
    # ---- pacing: >= 4 s of frames at 25 +- 1 fps, none dropped, pts on the audio timeline
    assert pts[-1] >= 4_000_000, f"only {pts[-1] / 1e6:.2f} s of frames"
    assert list(idx) == list(range(len(idx))), "frames were dropped or reordered"
    fps = (len(times) - 1) / (times[-1] - times[0])
    log.info("e2e: %d frames, %.2f fps, first frame %.3f s after open, latency %.0f ms",
             len(idx), fps, times[0] - t_open, started.latency_us / 1e3)
    assert fps <= 26.0, f"{fps:.2f} fps: frames ran ahead of the audio clock"
    assert np.all(np.diff(pts) > 0) and np.all(pts == idx * FRAME_US)
    # frames arrive about `latency` after their pts on the client's audio clock
    lateness = times - (t_audio0[0] + pts / 1e6) - started.latency_us / 1e6
    if paced_host:
        assert fps >= 24.0, f"{fps:.2f} fps"
        assert np.median(np.abs(lateness)) < 0.1, f"median lateness {np.median(lateness):.3f} s"
    else:
        # What a slow host still owes: the stream keeps flowing at no less than half the rate
        # its own model step allows (measured 0.70-0.81 of it on an AVX2-only 2-core VM).
        host_fps = min(FPS, model.chunk_frames / cost_s)
        assert fps >= 0.5 * host_fps, f"{fps:.2f} fps on a host whose model allows {host_fps:.1f}"
    # ---- speaking / listening flags follow the audio at its pts (alignment to the timeline)
    for _, f in frames:
        speak, listen = _inside(f.pts_us, SPEAK_ON), _inside(f.pts_us, LISTEN_ON)
        if speak is not None:
            assert f.speaking == speak, f"frame {f.index} speaking={f.speaking}"
        if listen is not None:
            assert f.listening == listen, f"frame {f.index} listening={f.listening}"
    # ---- the emotion track: neutral, blend to happy 0.8 over 1.0-1.5 s, then sad 0.6 at 3 s
    emo = {f.pts_us: np.array(f.emotion) for _, f in frames}
    happy = VOCAB.tag_vector("happy", 0.8)
    np.testing.assert_allclose(emo[960_000], VOCAB.neutral(), atol=1e-6)
    np.testing.assert_allclose(emo[1_240_000], 0.52 * VOCAB.neutral() + 0.48 * happy, atol=1e-5)
    np.testing.assert_allclose(emo[2_000_000], happy, atol=1e-6)
    np.testing.assert_allclose(emo[3_000_000], VOCAB.tag_vector("sad", 0.6), atol=1e-6)
    kinds = [perform_pb2.PerformanceEvent.Kind.Name(e.kind) for e in events]
    assert kinds.count("EMOTION_APPLIED") == 2 and "LINE_STARTED" in kinds
    assert "LINE_FINISHED" in kinds and kinds[-1] == "STOPPED"
    assert {f.line_id for _, f in frames if f.pts_us < 1_500_000} == {"greeting"}
    # ---- payloads: exactly the encoder's BC1 of the model's frames; an independent decoder
    # reads them back close to those frames
    produced = np.concatenate(recorder.outputs)                    # (chunks*C, H, W, 3)
    assert len(produced) >= len(frames)
    psnrs = []
    for _, f in frames:
        rgb = produced[f.index]
        assert f.payload == texture.encode(rgb, texture.TextureFormat.BC1)[0]
        bgra = np.frombuffer(texture2ddecoder.decode_bc1(f.payload, f.width, f.height), np.uint8)
        decoded = bgra.reshape(f.height, f.width, 4)[..., [2, 1, 0]]
        assert _psnr(decoded, texture.decode(f.payload, "bc1", f.width, f.height)) > 50
        psnrs.append(_psnr(decoded, rgb))
    log.info("e2e: BC1 PSNR vs model frames: mean %.2f dB, min %.2f dB (model trained: %s)",
             np.mean(psnrs), np.min(psnrs), model.trained)
    if model.trained:
        assert min(psnrs) >= 30.0
    else:
        # Untrained weights render per-pixel noise, which no 4-bpp codec keeps at 30 dB; the
        # payload identity above is the transport check, and the codec's quality on images is
        # tested in tests/texture.
        assert min(psnrs) >= 15.0
    if not paced_host:
        pytest.skip(f"pacing not asserted: a chunk step + BC1 takes {cost_s * 1e3:.0f} ms on "
                    f"this host (> {PACING_HEADROOM:.0%} of the {1e3 * model.chunk_frames / FPS:.0f}"
                    f" ms chunk period); got {fps:.2f} fps, median lateness "
                    f"{np.median(lateness):.3f} s; every other check passed")
