from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TagEmotion(_message.Message):
    __slots__ = ("name", "intensity")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INTENSITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    intensity: float
    def __init__(self, name: _Optional[str] = ..., intensity: _Optional[float] = ...) -> None: ...

class EmotionWeights(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Emotion(_message.Message):
    __slots__ = ("tag", "weights")
    TAG_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    tag: TagEmotion
    weights: EmotionWeights
    def __init__(self, tag: _Optional[_Union[TagEmotion, _Mapping]] = ..., weights: _Optional[_Union[EmotionWeights, _Mapping]] = ...) -> None: ...

class EmotionPreset(_message.Message):
    __slots__ = ("name", "blend")
    class BlendEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    BLEND_FIELD_NUMBER: _ClassVar[int]
    name: str
    blend: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., blend: _Optional[_Mapping[str, float]] = ...) -> None: ...

class EmotionVocabulary(_message.Message):
    __slots__ = ("version", "tags", "presets")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    version: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    presets: _containers.RepeatedCompositeFieldContainer[EmotionPreset]
    def __init__(self, version: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ..., presets: _Optional[_Iterable[_Union[EmotionPreset, _Mapping]]] = ...) -> None: ...
