from npc_runtime._proto import emotion_pb2 as _emotion_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TextureFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXTURE_FORMAT_UNSPECIFIED: _ClassVar[TextureFormat]
    TEXTURE_FORMAT_BC1: _ClassVar[TextureFormat]
    TEXTURE_FORMAT_RGBA8: _ClassVar[TextureFormat]

class AudioChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_CHANNEL_UNSPECIFIED: _ClassVar[AudioChannel]
    AUDIO_CHANNEL_SPEAK: _ClassVar[AudioChannel]
    AUDIO_CHANNEL_LISTEN: _ClassVar[AudioChannel]
TEXTURE_FORMAT_UNSPECIFIED: TextureFormat
TEXTURE_FORMAT_BC1: TextureFormat
TEXTURE_FORMAT_RGBA8: TextureFormat
AUDIO_CHANNEL_UNSPECIFIED: AudioChannel
AUDIO_CHANNEL_SPEAK: AudioChannel
AUDIO_CHANNEL_LISTEN: AudioChannel

class StartPerformance(_message.Message):
    __slots__ = ("npc_id", "texture_format", "seed", "initial_emotion", "bottom_up", "take_over", "client_name")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    TEXTURE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INITIAL_EMOTION_FIELD_NUMBER: _ClassVar[int]
    BOTTOM_UP_FIELD_NUMBER: _ClassVar[int]
    TAKE_OVER_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    texture_format: TextureFormat
    seed: int
    initial_emotion: _emotion_pb2.Emotion
    bottom_up: bool
    take_over: bool
    client_name: str
    def __init__(self, npc_id: _Optional[str] = ..., texture_format: _Optional[_Union[TextureFormat, str]] = ..., seed: _Optional[int] = ..., initial_emotion: _Optional[_Union[_emotion_pb2.Emotion, _Mapping]] = ..., bottom_up: _Optional[bool] = ..., take_over: _Optional[bool] = ..., client_name: _Optional[str] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("channel", "pcm16", "sample_rate", "pts_us")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PCM16_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    PTS_US_FIELD_NUMBER: _ClassVar[int]
    channel: AudioChannel
    pcm16: bytes
    sample_rate: int
    pts_us: int
    def __init__(self, channel: _Optional[_Union[AudioChannel, str]] = ..., pcm16: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., pts_us: _Optional[int] = ...) -> None: ...

class EmotionCue(_message.Message):
    __slots__ = ("emotion", "transition_s", "pts_us")
    EMOTION_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_S_FIELD_NUMBER: _ClassVar[int]
    PTS_US_FIELD_NUMBER: _ClassVar[int]
    emotion: _emotion_pb2.Emotion
    transition_s: float
    pts_us: int
    def __init__(self, emotion: _Optional[_Union[_emotion_pb2.Emotion, _Mapping]] = ..., transition_s: _Optional[float] = ..., pts_us: _Optional[int] = ...) -> None: ...

class LineMarker(_message.Message):
    __slots__ = ("line_id", "start_pts_us", "end_pts_us", "text")
    LINE_ID_FIELD_NUMBER: _ClassVar[int]
    START_PTS_US_FIELD_NUMBER: _ClassVar[int]
    END_PTS_US_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    line_id: str
    start_pts_us: int
    end_pts_us: int
    text: str
    def __init__(self, line_id: _Optional[str] = ..., start_pts_us: _Optional[int] = ..., end_pts_us: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class StopPerformance(_message.Message):
    __slots__ = ("immediate",)
    IMMEDIATE_FIELD_NUMBER: _ClassVar[int]
    immediate: bool
    def __init__(self, immediate: _Optional[bool] = ...) -> None: ...

class PerformRequest(_message.Message):
    __slots__ = ("start", "audio", "emotion", "line", "stop")
    START_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    EMOTION_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    start: StartPerformance
    audio: AudioChunk
    emotion: EmotionCue
    line: LineMarker
    stop: StopPerformance
    def __init__(self, start: _Optional[_Union[StartPerformance, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., emotion: _Optional[_Union[EmotionCue, _Mapping]] = ..., line: _Optional[_Union[LineMarker, _Mapping]] = ..., stop: _Optional[_Union[StopPerformance, _Mapping]] = ...) -> None: ...

class PerformanceStarted(_message.Message):
    __slots__ = ("session_id", "npc_id", "texture_format", "width", "height", "fps", "chunk_frames", "payload_bytes", "latency_us", "max_audio_ahead_us", "emotion_tags", "bottom_up", "took_over")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    TEXTURE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FRAMES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    MAX_AUDIO_AHEAD_US_FIELD_NUMBER: _ClassVar[int]
    EMOTION_TAGS_FIELD_NUMBER: _ClassVar[int]
    BOTTOM_UP_FIELD_NUMBER: _ClassVar[int]
    TOOK_OVER_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    npc_id: str
    texture_format: TextureFormat
    width: int
    height: int
    fps: int
    chunk_frames: int
    payload_bytes: int
    latency_us: int
    max_audio_ahead_us: int
    emotion_tags: _containers.RepeatedScalarFieldContainer[str]
    bottom_up: bool
    took_over: bool
    def __init__(self, session_id: _Optional[str] = ..., npc_id: _Optional[str] = ..., texture_format: _Optional[_Union[TextureFormat, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[int] = ..., chunk_frames: _Optional[int] = ..., payload_bytes: _Optional[int] = ..., latency_us: _Optional[int] = ..., max_audio_ahead_us: _Optional[int] = ..., emotion_tags: _Optional[_Iterable[str]] = ..., bottom_up: _Optional[bool] = ..., took_over: _Optional[bool] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("index", "pts_us", "format", "width", "height", "payload", "speaking", "listening", "emotion", "line_id")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PTS_US_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SPEAKING_FIELD_NUMBER: _ClassVar[int]
    LISTENING_FIELD_NUMBER: _ClassVar[int]
    EMOTION_FIELD_NUMBER: _ClassVar[int]
    LINE_ID_FIELD_NUMBER: _ClassVar[int]
    index: int
    pts_us: int
    format: TextureFormat
    width: int
    height: int
    payload: bytes
    speaking: bool
    listening: bool
    emotion: _containers.RepeatedScalarFieldContainer[float]
    line_id: str
    def __init__(self, index: _Optional[int] = ..., pts_us: _Optional[int] = ..., format: _Optional[_Union[TextureFormat, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., payload: _Optional[bytes] = ..., speaking: _Optional[bool] = ..., listening: _Optional[bool] = ..., emotion: _Optional[_Iterable[float]] = ..., line_id: _Optional[str] = ...) -> None: ...

class PerformanceEvent(_message.Message):
    __slots__ = ("kind", "pts_us", "line_id", "message", "duration_us", "frame_count")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[PerformanceEvent.Kind]
        LINE_STARTED: _ClassVar[PerformanceEvent.Kind]
        LINE_FINISHED: _ClassVar[PerformanceEvent.Kind]
        EMOTION_APPLIED: _ClassVar[PerformanceEvent.Kind]
        AUDIO_LATE: _ClassVar[PerformanceEvent.Kind]
        FRAMES_DROPPED: _ClassVar[PerformanceEvent.Kind]
        SERVER_SHUTDOWN: _ClassVar[PerformanceEvent.Kind]
        STOPPED: _ClassVar[PerformanceEvent.Kind]
    KIND_UNSPECIFIED: PerformanceEvent.Kind
    LINE_STARTED: PerformanceEvent.Kind
    LINE_FINISHED: PerformanceEvent.Kind
    EMOTION_APPLIED: PerformanceEvent.Kind
    AUDIO_LATE: PerformanceEvent.Kind
    FRAMES_DROPPED: PerformanceEvent.Kind
    SERVER_SHUTDOWN: PerformanceEvent.Kind
    STOPPED: PerformanceEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    PTS_US_FIELD_NUMBER: _ClassVar[int]
    LINE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    kind: PerformanceEvent.Kind
    pts_us: int
    line_id: str
    message: str
    duration_us: int
    frame_count: int
    def __init__(self, kind: _Optional[_Union[PerformanceEvent.Kind, str]] = ..., pts_us: _Optional[int] = ..., line_id: _Optional[str] = ..., message: _Optional[str] = ..., duration_us: _Optional[int] = ..., frame_count: _Optional[int] = ...) -> None: ...

class PerformResponse(_message.Message):
    __slots__ = ("started", "frame", "event")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    started: PerformanceStarted
    frame: Frame
    event: PerformanceEvent
    def __init__(self, started: _Optional[_Union[PerformanceStarted, _Mapping]] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., event: _Optional[_Union[PerformanceEvent, _Mapping]] = ...) -> None: ...
