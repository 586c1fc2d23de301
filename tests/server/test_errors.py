"""Every bad input gets a precise status and message and changes nothing; a second stream, a
vanishing client and a graceful shutdown behave as documented (docs/serving.md)."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from npc_runtime._proto import emotion_pb2, npc_pb2, perform_pb2, runtime_pb2

from .helpers import ServerThread, audio_msg, image_bytes, register, start_msg, tone_pcm16

SPEAK, LISTEN = perform_pb2.AUDIO_CHANNEL_SPEAK, perform_pb2.AUDIO_CHANNEL_LISTEN


@pytest.fixture(scope="module")
def srv(tmp_path_factory, model):
    # small message/image limits so "oversized" is cheap to send
    with ServerThread(tmp_path_factory.mktemp("errors"), model, warmup_chunks=1,
                      limits__max_message_bytes=1 << 20, limits__max_image_bytes=256 << 10,
                      limits__max_image_pixels=1 << 20) as s:
        channel, stub = s.stub()
        register(stub, "guard")
        s.stub_ = stub
        yield s
        channel.close()


def _perform(stub, messages, timeout=20.0):
    """Run a stream to its end: (status code, details, responses)."""
    out = []
    call = stub.Perform(iter(messages), timeout=timeout)
    try:
        for msg in call:
            out.append(msg)
    except grpc.RpcError as e:
        return e.code(), e.details(), out
    return grpc.StatusCode.OK, "", out


def _npc_count(stub) -> int:
    return len(stub.ListNpcs(npc_pb2.ListNpcsRequest(), timeout=10).npcs)


def _flat_png(w: int, h: int) -> bytes:
    """A tiny file that decodes to a big canvas."""
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 60, 40)).save(buf, "PNG")
    return buf.getvalue()


STOP = perform_pb2.PerformRequest(stop=perform_pb2.StopPerformance(immediate=True))


@pytest.mark.parametrize("messages, code, fragment", [
    ([start_msg("nobody")], grpc.StatusCode.NOT_FOUND, "no NPC 'nobody'"),
    ([audio_msg(b"\0\0")], grpc.StatusCode.INVALID_ARGUMENT, "first message must be start"),
    ([], grpc.StatusCode.INVALID_ARGUMENT, "ended before StartPerformance"),
    ([start_msg("guard", texture_format=9)], grpc.StatusCode.INVALID_ARGUMENT, "texture_format"),
    ([start_msg("guard"), audio_msg(b"\0\0", rate=7000)], grpc.StatusCode.INVALID_ARGUMENT,
     "sample_rate 7000 Hz on SPEAK is outside 8000..48000"),
    ([start_msg("guard"), audio_msg(b"\0\0\0")], grpc.StatusCode.INVALID_ARGUMENT,
     "odd byte count 3"),
    ([start_msg("guard"), audio_msg(b"\0\0", channel=0)], grpc.StatusCode.INVALID_ARGUMENT,
     "SPEAK or LISTEN"),
    ([start_msg("guard"), audio_msg(tone_pcm16(0.2), pts_us=1_000_000),
      audio_msg(tone_pcm16(0.1), pts_us=500_000)], grpc.StatusCode.INVALID_ARGUMENT,
     "goes backwards: 500000 < end of the previous chunk 1200000"),
    ([start_msg("guard"), audio_msg(tone_pcm16(0.1), rate=16000),
      audio_msg(tone_pcm16(0.1, 8000), rate=8000)], grpc.StatusCode.INVALID_ARGUMENT,
     "changed from 16000 to 8000"),
    ([start_msg("guard"), perform_pb2.PerformRequest(emotion=perform_pb2.EmotionCue(
        emotion=emotion_pb2.Emotion(tag=emotion_pb2.TagEmotion(name="gleeful"))))],
     grpc.StatusCode.INVALID_ARGUMENT, "known tags: neutral, happy, sad"),
    ([start_msg("guard"), perform_pb2.PerformRequest(emotion=perform_pb2.EmotionCue(
        emotion=emotion_pb2.Emotion(weights=emotion_pb2.EmotionWeights(values=[1.0]))))],
     grpc.StatusCode.INVALID_ARGUMENT, "must have 7 entries"),
    ([start_msg("guard"), perform_pb2.PerformRequest(emotion=perform_pb2.EmotionCue(
        emotion=emotion_pb2.Emotion(tag=emotion_pb2.TagEmotion(name="sad")), pts_us=2_000_000)),
      perform_pb2.PerformRequest(emotion=perform_pb2.EmotionCue(
          emotion=emotion_pb2.Emotion(tag=emotion_pb2.TagEmotion(name="sad")), pts_us=1_000_000))],
     grpc.StatusCode.INVALID_ARGUMENT, "emotion.pts_us goes backwards"),
    ([start_msg("guard"), start_msg("guard")], grpc.StatusCode.INVALID_ARGUMENT,
     "start may only be the first message"),
    ([start_msg("guard"), audio_msg(b"\0" * (2 << 20))], grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
])
def test_bad_perform_input_gets_precise_status(srv, messages, code, fragment):
    if messages and messages[0].WhichOneof("message") == "start":
        messages = messages + [STOP]
    got, details, _ = _perform(srv.stub_, messages)
    assert got == code, details
    assert fragment in details
    # nothing changed and the server is fine for the next client
    assert _npc_count(srv.stub_) == 1
    got, details, _ = _perform(srv.stub_, [start_msg("guard"), STOP])
    assert got == grpc.StatusCode.OK, details


@pytest.mark.parametrize("images, fragment", [
    ([b"not an image"], "reference_images[0]: not a PNG or JPEG"),
    ([image_bytes()[:200]], "reference_images[0]: corrupt PNG"),
    ([image_bytes(seed=1), image_bytes(fmt="JPEG")[:-400]], "reference_images[1]: corrupt JPEG"),
    ([_flat_png(1100, 1000)], "image is 1100x1000 pixels; the limit is 1048576 pixels"),
    ([], "0 images given; 1..4 are required"),
    ([image_bytes(seed=i) for i in range(5)], "5 images given"),
    ([image_bytes(8, 8)], "at least 16 pixels"),
])
def test_bad_images_are_refused_and_change_nothing(srv, images, fragment):
    with pytest.raises(grpc.RpcError) as e:
        register(srv.stub_, "newcomer", reference_images=images)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in e.value.details()
    assert _npc_count(srv.stub_) == 1
    assert not any((srv.running.runtime.store.images.root).rglob("*.tmp"))


def test_oversized_image_and_message(srv):
    noisy = image_bytes(500, 500)                    # fits the pixel limit
    import numpy as np, io
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (500, 500, 3), np.uint8)).save(
        buf, "PNG")
    big = buf.getvalue()                             # ~750 KB > 256 KiB image limit
    assert len(big) > 256 << 10 and len(noisy) < 256 << 10
    with pytest.raises(grpc.RpcError) as e:
        register(srv.stub_, "big", reference_images=[big])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"image is {len(big)} bytes; the limit is 262144" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        register(srv.stub_, "big", reference_images=[big, big])   # > 1 MiB message limit
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _npc_count(srv.stub_) == 1


def test_npc_crud_errors(srv):
    stub = srv.stub_
    with pytest.raises(grpc.RpcError) as e:
        register(stub, "guard")
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    for call, req in [(stub.GetNpc, npc_pb2.GetNpcRequest(npc_id="ghost")),
                      (stub.UpdateNpc, npc_pb2.UpdateNpcRequest(npc_id="ghost")),
                      (stub.DeleteNpc, npc_pb2.DeleteNpcRequest(npc_id="ghost"))]:
        with pytest.raises(grpc.RpcError) as e:
            call(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and "ghost" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        register(stub, "bad id!")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "[A-Za-z0-9_-]" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        register(stub, "x", default_emotion=emotion_pb2.TagEmotion(name="smug2"))
    assert "unknown emotion 'smug2'" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        register(stub, "x", presets=[emotion_pb2.EmotionPreset(name="p", blend={"happy": 1.5})])
    assert "intensity of 'happy' must be in [0, 1]" in e.value.details()
    rev = stub.GetNpc(npc_pb2.GetNpcRequest(npc_id="guard"), timeout=10).revision
    with pytest.raises(grpc.RpcError) as e:
        stub.UpdateNpc(npc_pb2.UpdateNpcRequest(npc_id="guard", display_name="G",
                                                expected_revision=rev + 5), timeout=10)
    assert e.value.code() == grpc.StatusCode.ABORTED
    assert stub.GetNpc(npc_pb2.GetNpcRequest(npc_id="guard"), timeout=10).revision == rev
    assert _npc_count(stub) == 1


def _open_until_first_frame(stub, npc_id, **start):
    """A live stream kept open by a generator that blocks until released."""
    import threading
    release = threading.Event()

    def requests():
        yield start_msg(npc_id, **start)
        release.wait(30)

    call = stub.Perform(requests(), timeout=30)
    for msg in call:
        if msg.WhichOneof("message") == "frame":
            break
    return call, release


def test_second_stream_is_refused_unless_it_takes_over(srv):
    stub = srv.stub_
    first, release1 = _open_until_first_frame(stub, "guard")
    try:
        got, details, _ = _perform(stub, [start_msg("guard"), STOP])
        assert got == grpc.StatusCode.FAILED_PRECONDITION and "already has a live stream" in details
        with pytest.raises(grpc.RpcError) as e:
            stub.DeleteNpc(npc_pb2.DeleteNpcRequest(npc_id="guard"), timeout=10)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        second, release2 = _open_until_first_frame(stub, "guard", take_over=True)
        with pytest.raises(grpc.RpcError) as e:
            for _ in first:
                pass
        assert e.value.code() == grpc.StatusCode.ABORTED and "taken over" in e.value.details()
        second.cancel()
        release2.set()
    finally:
        release1.set()
    _wait_no_live(srv)


def _wait_no_live(srv, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not srv.running.servicer.perform.live and srv.running.runtime.model.session_count == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"streams still live: {list(srv.running.servicer.perform.live)}")


def test_client_vanishing_mid_stream_frees_everything(srv):
    call, release = _open_until_first_frame(srv.stub_, "guard")
    call.cancel()                                     # the game vanishes
    release.set()
    _wait_no_live(srv)
    assert srv.running.runtime.engine.active == 0
    got, details, out = _perform(srv.stub_, [start_msg("guard"), STOP])
    assert got == grpc.StatusCode.OK, details


def test_health_and_reflection(srv):
    channel, _ = srv.stub()
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "npc_runtime.v1.NpcRuntime"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status \
            == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    answer = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
        list_services="")]), timeout=5))
    names = {s.name for s in answer.list_services_response.service}
    assert {"npc_runtime.v1.NpcRuntime", "grpc.health.v1.Health"} <= names
    info = srv.stub_.GetServerInfo(runtime_pb2.GetServerInfoRequest(), timeout=5)
    assert info.protocol_version == 1 and info.limits.max_image_bytes == 256 << 10
    assert list(info.emotions.tags)[:2] == ["neutral", "happy"] and info.fps == 25
    # The model describes itself honestly: trained flag and status line agree.
    assert info.model.status and info.model.trained == (info.model.status == "trained")
    if not info.model.trained:
        assert info.model.status.startswith("untrained")
    channel.close()


def test_sigterm_style_shutdown_drains_streams(tmp_path, model):
    with ServerThread(tmp_path, model, warmup_chunks=0) as s:
        channel, stub = s.stub()
        register(stub, "bard")
        call, release = _open_until_first_frame(stub, "bard")
        t = time.monotonic()
        import threading
        stopper = threading.Thread(target=s.stop, args=(2.0,))
        stopper.start()
        kinds, frames_after = [], 0
        with pytest.raises(grpc.RpcError) as e:
            for msg in call:
                if msg.WhichOneof("message") == "event":
                    kinds.append(perform_pb2.PerformanceEvent.Kind.Name(msg.event.kind))
                elif kinds:
                    frames_after += 1
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in e.value.details()
        assert kinds[:1] == ["SERVER_SHUTDOWN"] and frames_after > 0
        assert time.monotonic() - t < 4.0
        release.set()
        stopper.join(10)
        channel.close()
