from npc_runtime._proto import emotion_pb2 as _emotion_pb2
from npc_runtime._proto import npc_pb2 as _npc_pb2
from npc_runtime._proto import perform_pb2 as _perform_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_PRIORITY_UNSPECIFIED: _ClassVar[StreamPriority]
    STREAM_PRIORITY_BACKGROUND: _ClassVar[StreamPriority]
    STREAM_PRIORITY_NORMAL: _ClassVar[StreamPriority]
    STREAM_PRIORITY_HERO: _ClassVar[StreamPriority]
STREAM_PRIORITY_UNSPECIFIED: StreamPriority
STREAM_PRIORITY_BACKGROUND: StreamPriority
STREAM_PRIORITY_NORMAL: StreamPriority
STREAM_PRIORITY_HERO: StreamPriority

class GetServerInfoRequest(_message.Message):
    __slots__ = ("client_protocol_version",)
    CLIENT_PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    client_protocol_version: int
    def __init__(self, client_protocol_version: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "config", "trained", "parameter_count", "fingerprint", "device", "status", "info")
    class InfoEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TRAINED_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    name: str
    config: str
    trained: bool
    parameter_count: int
    fingerprint: str
    device: str
    status: str
    info: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., config: _Optional[str] = ..., trained: _Optional[bool] = ..., parameter_count: _Optional[int] = ..., fingerprint: _Optional[str] = ..., device: _Optional[str] = ..., status: _Optional[str] = ..., info: _Optional[_Mapping[str, str]] = ...) -> None: ...

class FrameSize(_message.Message):
    __slots__ = ("width", "height")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_message_bytes", "min_reference_images", "max_reference_images", "max_image_bytes", "max_image_pixels", "max_sessions", "min_sample_rate", "max_sample_rate", "model_sample_rate", "max_audio_chunk_us", "max_audio_ahead_us", "max_audio_gap_us", "max_transition_s", "max_presets", "max_display_name_chars")
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MIN_REFERENCE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_REFERENCE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    MODEL_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_AUDIO_CHUNK_US_FIELD_NUMBER: _ClassVar[int]
    MAX_AUDIO_AHEAD_US_FIELD_NUMBER: _ClassVar[int]
    MAX_AUDIO_GAP_US_FIELD_NUMBER: _ClassVar[int]
    MAX_TRANSITION_S_FIELD_NUMBER: _ClassVar[int]
    MAX_PRESETS_FIELD_NUMBER: _ClassVar[int]
    MAX_DISPLAY_NAME_CHARS_FIELD_NUMBER: _ClassVar[int]
    max_message_bytes: int
    min_reference_images: int
    max_reference_images: int
    max_image_bytes: int
    max_image_pixels: int
    max_sessions: int
    min_sample_rate: int
    max_sample_rate: int
    model_sample_rate: int
    max_audio_chunk_us: int
    max_audio_ahead_us: int
    max_audio_gap_us: int
    max_transition_s: float
    max_presets: int
    max_display_name_chars: int
    def __init__(self, max_message_bytes: _Optional[int] = ..., min_reference_images: _Optional[int] = ..., max_reference_images: _Optional[int] = ..., max_image_bytes: _Optional[int] = ..., max_image_pixels: _Optional[int] = ..., max_sessions: _Optional[int] = ..., min_sample_rate: _Optional[int] = ..., max_sample_rate: _Optional[int] = ..., model_sample_rate: _Optional[int] = ..., max_audio_chunk_us: _Optional[int] = ..., max_audio_ahead_us: _Optional[int] = ..., max_audio_gap_us: _Optional[int] = ..., max_transition_s: _Optional[float] = ..., max_presets: _Optional[int] = ..., max_display_name_chars: _Optional[int] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("protocol_version", "server_version", "model", "fps", "frame_sizes", "chunk_frames", "texture_formats", "default_texture_format", "emotions", "limits", "latency_us", "active_sessions", "capabilities")
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    FRAME_SIZES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FRAMES_FIELD_NUMBER: _ClassVar[int]
    TEXTURE_FORMATS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TEXTURE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    EMOTIONS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    server_version: str
    model: ModelInfo
    fps: int
    frame_sizes: _containers.RepeatedCompositeFieldContainer[FrameSize]
    chunk_frames: int
    texture_formats: _containers.RepeatedScalarFieldContainer[_perform_pb2.TextureFormat]
    default_texture_format: _perform_pb2.TextureFormat
    emotions: _emotion_pb2.EmotionVocabulary
    limits: Limits
    latency_us: int
    active_sessions: int
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, protocol_version: _Optional[int] = ..., server_version: _Optional[str] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ..., fps: _Optional[int] = ..., frame_sizes: _Optional[_Iterable[_Union[FrameSize, _Mapping]]] = ..., chunk_frames: _Optional[int] = ..., texture_formats: _Optional[_Iterable[_Union[_perform_pb2.TextureFormat, str]]] = ..., default_texture_format: _Optional[_Union[_perform_pb2.TextureFormat, str]] = ..., emotions: _Optional[_Union[_emotion_pb2.EmotionVocabulary, _Mapping]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., latency_us: _Optional[int] = ..., active_sessions: _Optional[int] = ..., capabilities: _Optional[_Iterable[str]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("include_sessions",)
    INCLUDE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    include_sessions: bool
    def __init__(self, include_sessions: _Optional[bool] = ...) -> None: ...

class LatencyStats(_message.Message):
    __slots__ = ("p50_ms", "p99_ms", "max_ms", "count")
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    count: int
    def __init__(self, p50_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., max_ms: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class BatchSizeCount(_message.Message):
    __slots__ = ("batch_size", "steps")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    steps: int
    def __init__(self, batch_size: _Optional[int] = ..., steps: _Optional[int] = ...) -> None: ...

class SessionStats(_message.Message):
    __slots__ = ("session_id", "npc_id", "priority", "age_s", "frames_sent", "fps", "time_to_first_frame_ms", "audio_to_frame", "deadline_misses", "frames_dropped", "frames_held", "degraded_chunks")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    AGE_S_FIELD_NUMBER: _ClassVar[int]
    FRAMES_SENT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_FRAME_MS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_TO_FRAME_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MISSES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_HELD_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    npc_id: str
    priority: StreamPriority
    age_s: float
    frames_sent: int
    fps: float
    time_to_first_frame_ms: float
    audio_to_frame: LatencyStats
    deadline_misses: int
    frames_dropped: int
    frames_held: int
    degraded_chunks: int
    def __init__(self, session_id: _Optional[str] = ..., npc_id: _Optional[str] = ..., priority: _Optional[_Union[StreamPriority, str]] = ..., age_s: _Optional[float] = ..., frames_sent: _Optional[int] = ..., fps: _Optional[float] = ..., time_to_first_frame_ms: _Optional[float] = ..., audio_to_frame: _Optional[_Union[LatencyStats, _Mapping]] = ..., deadline_misses: _Optional[int] = ..., frames_dropped: _Optional[int] = ..., frames_held: _Optional[int] = ..., degraded_chunks: _Optional[int] = ...) -> None: ...

class ServerStats(_message.Message):
    __slots__ = ("uptime_s", "active_sessions", "capacity", "capacity_reason", "fps", "frames_sent", "deadline_misses", "frames_dropped", "frames_held", "degraded_chunks", "time_to_first_frame", "audio_to_frame", "steps", "chunks", "batch_sizes", "step_time", "engine_busy_s", "cache_pages_used", "cache_pages_total", "degradation_level", "streams_refused", "sampling_steps", "degraded_sampling_steps", "sessions")
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_REASON_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_SENT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MISSES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_HELD_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_FRAME_FIELD_NUMBER: _ClassVar[int]
    AUDIO_TO_FRAME_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZES_FIELD_NUMBER: _ClassVar[int]
    STEP_TIME_FIELD_NUMBER: _ClassVar[int]
    ENGINE_BUSY_S_FIELD_NUMBER: _ClassVar[int]
    CACHE_PAGES_USED_FIELD_NUMBER: _ClassVar[int]
    CACHE_PAGES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DEGRADATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    STREAMS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_STEPS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_SAMPLING_STEPS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    uptime_s: float
    active_sessions: int
    capacity: int
    capacity_reason: str
    fps: float
    frames_sent: int
    deadline_misses: int
    frames_dropped: int
    frames_held: int
    degraded_chunks: int
    time_to_first_frame: LatencyStats
    audio_to_frame: LatencyStats
    steps: int
    chunks: int
    batch_sizes: _containers.RepeatedCompositeFieldContainer[BatchSizeCount]
    step_time: LatencyStats
    engine_busy_s: float
    cache_pages_used: int
    cache_pages_total: int
    degradation_level: int
    streams_refused: int
    sampling_steps: int
    degraded_sampling_steps: int
    sessions: _containers.RepeatedCompositeFieldContainer[SessionStats]
    def __init__(self, uptime_s: _Optional[float] = ..., active_sessions: _Optional[int] = ..., capacity: _Optional[int] = ..., capacity_reason: _Optional[str] = ..., fps: _Optional[float] = ..., frames_sent: _Optional[int] = ..., deadline_misses: _Optional[int] = ..., frames_dropped: _Optional[int] = ..., frames_held: _Optional[int] = ..., degraded_chunks: _Optional[int] = ..., time_to_first_frame: _Optional[_Union[LatencyStats, _Mapping]] = ..., audio_to_frame: _Optional[_Union[LatencyStats, _Mapping]] = ..., steps: _Optional[int] = ..., chunks: _Optional[int] = ..., batch_sizes: _Optional[_Iterable[_Union[BatchSizeCount, _Mapping]]] = ..., step_time: _Optional[_Union[LatencyStats, _Mapping]] = ..., engine_busy_s: _Optional[float] = ..., cache_pages_used: _Optional[int] = ..., cache_pages_total: _Optional[int] = ..., degradation_level: _Optional[int] = ..., streams_refused: _Optional[int] = ..., sampling_steps: _Optional[int] = ..., degraded_sampling_steps: _Optional[int] = ..., sessions: _Optional[_Iterable[_Union[SessionStats, _Mapping]]] = ...) -> None: ...
