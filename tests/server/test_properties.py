"""Property tests: malformed Perform streams and NPC payloads get a status, never a crash, and
the server stays healthy for the next client."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npc_runtime._proto import emotion_pb2, npc_pb2, perform_pb2

from .helpers import ServerThread, image_bytes, register

# Statuses a client error may get; INTERNAL / UNKNOWN would mean the server broke.
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
           grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED,
           grpc.StatusCode.ALREADY_EXISTS}
TAGS = ["neutral", "happy", "sad", "angry", "smug", "", "happy ", "x" * 70, "\u00e9motion"]
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.sampled_from([0.0, 0.5, 1.0, -0.1, 1.1]))


@pytest.fixture(scope="module")
def srv(tmp_path_factory, model):
    with ServerThread(tmp_path_factory.mktemp("props"), model, warmup_chunks=0,
                      limits__max_audio_gap_s=2.0, limits__max_audio_chunk_s=1.0) as s:
        channel, stub = s.stub()
        register(stub, "prop")
        s.stub_ = stub
        s.health_ = health_pb2_grpc.HealthStub(channel)
        yield s
        channel.close()


emotions = st.one_of(
    st.builds(lambda n, i: emotion_pb2.Emotion(tag=emotion_pb2.TagEmotion(name=n, intensity=i)),
              st.sampled_from(TAGS), floats),
    st.builds(lambda v: emotion_pb2.Emotion(weights=emotion_pb2.EmotionWeights(values=v)),
              st.lists(floats, max_size=9)),
    st.just(emotion_pb2.Emotion()))
audio = st.builds(
    lambda ch, pcm, rate, pts: perform_pb2.PerformRequest(audio=perform_pb2.AudioChunk(
        channel=ch, pcm16=pcm, sample_rate=rate, **({} if pts is None else {"pts_us": pts}))),
    st.sampled_from([0, 1, 2, 3, -1]), st.binary(max_size=4001),
    st.sampled_from([0, 7999, 8000, 11025, 16000, 44100, 48000, 48001, 2**32 - 1]),
    st.one_of(st.none(), st.integers(-10**6, 3 * 10**6), st.sampled_from([2**63 - 1, -2**63])))
cue = st.builds(lambda e, tr, pts: perform_pb2.PerformRequest(emotion=perform_pb2.EmotionCue(
    emotion=e, transition_s=tr, **({} if pts is None else {"pts_us": pts}))),
    emotions, floats, st.one_of(st.none(), st.integers(-10**6, 3 * 10**6)))
line = st.builds(lambda i, a, b, t: perform_pb2.PerformRequest(line=perform_pb2.LineMarker(
    line_id=i, start_pts_us=a, text=t, **({} if b is None else {"end_pts_us": b}))),
    st.text(max_size=140), st.integers(-10, 3 * 10**6),
    st.one_of(st.none(), st.integers(-10, 3 * 10**6)), st.text(max_size=20))
start = st.builds(lambda npc, fmt, take, e: perform_pb2.PerformRequest(
    start=perform_pb2.StartPerformance(npc_id=npc, texture_format=fmt, take_over=take,
                                       **({} if e is None else {"initial_emotion": e}))),
    st.sampled_from(["prop", "prop", "ghost", ""]), st.sampled_from([0, 1, 2, 5]),
    st.booleans(), st.one_of(st.none(), emotions))
message = st.one_of(audio, cue, line, start, st.just(perform_pb2.PerformRequest()),
                    st.just(perform_pb2.PerformRequest(stop=perform_pb2.StopPerformance())))


def _healthy(srv) -> None:
    assert srv.health_.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
    assert srv.stub_.GetNpc(npc_pb2.GetNpcRequest(npc_id="prop"), timeout=5).npc_id == "prop"


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(first=st.one_of(start, message), rest=st.lists(message, max_size=8))
def test_malformed_perform_streams_get_a_status(srv, first, rest):
    messages = [first] + rest + [perform_pb2.PerformRequest(
        stop=perform_pb2.StopPerformance(immediate=True))]
    code = grpc.StatusCode.OK
    try:
        for _ in srv.stub_.Perform(iter(messages), timeout=20):
            pass
    except grpc.RpcError as e:
        code = e.code()
        assert e.details(), "a refusal must say why"
    assert code in ALLOWED, code
    _healthy(srv)


presets = st.lists(st.builds(lambda n, b: emotion_pb2.EmotionPreset(name=n, blend=b),
                             st.sampled_from(["smug2", "happy", "", "p q", "ok_1"]),
                             st.dictionaries(st.sampled_from(TAGS), floats, max_size=3)),
                   max_size=3)
images = st.lists(st.one_of(st.binary(max_size=300),
                            st.sampled_from([image_bytes(seed=1), image_bytes(40, 30, 2, "JPEG"),
                                             image_bytes()[:150], b"\x89PNG\r\n\x1a\n" + b"0" * 40,
                                             b"\xff\xd8\xff" + b"\0" * 30])),
                  max_size=5)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(npc_id=st.one_of(st.text(max_size=70), st.sampled_from(["prop", "a", "n-1_x"])),
       name=st.text(max_size=300), imgs=images, pre=presets,
       emo=st.builds(lambda n, i: emotion_pb2.TagEmotion(name=n, intensity=i),
                     st.sampled_from(TAGS + ["ok_1"]), floats))
def test_malformed_npc_payloads_get_a_status(srv, npc_id, name, imgs, pre, emo):
    before = {n.npc_id for n in srv.stub_.ListNpcs(npc_pb2.ListNpcsRequest(), timeout=5).npcs}
    try:
        npc = srv.stub_.RegisterNpc(npc_pb2.RegisterNpcRequest(
            npc_id=npc_id, display_name=name, reference_images=imgs, presets=pre,
            default_emotion=emo), timeout=10)
    except grpc.RpcError as e:
        assert e.code() in ALLOWED, (e.code(), e.details())
        after = {n.npc_id for n in srv.stub_.ListNpcs(npc_pb2.ListNpcsRequest(), timeout=5).npcs}
        assert after == before, "a refused registration changed the store"
    else:
        got = srv.stub_.GetNpc(npc_pb2.GetNpcRequest(npc_id=npc.npc_id, include_images=True),
                               timeout=5)
        assert [r.data for r in got.references] == list(imgs)
        srv.stub_.DeleteNpc(npc_pb2.DeleteNpcRequest(npc_id=npc.npc_id), timeout=5)
    _healthy(srv)
