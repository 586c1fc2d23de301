from npc_runtime._proto import emotion_pb2 as _emotion_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReferenceImage(_message.Message):
    __slots__ = ("sha256", "media_type", "width", "height", "size_bytes", "data")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    media_type: str
    width: int
    height: int
    size_bytes: int
    data: bytes
    def __init__(self, sha256: _Optional[str] = ..., media_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., size_bytes: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class Npc(_message.Message):
    __slots__ = ("npc_id", "display_name", "default_emotion", "presets", "references", "revision", "created_unix_ms", "updated_unix_ms", "streaming")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_EMOTION_FIELD_NUMBER: _ClassVar[int]
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    display_name: str
    default_emotion: _emotion_pb2.TagEmotion
    presets: _containers.RepeatedCompositeFieldContainer[_emotion_pb2.EmotionPreset]
    references: _containers.RepeatedCompositeFieldContainer[ReferenceImage]
    revision: int
    created_unix_ms: int
    updated_unix_ms: int
    streaming: bool
    def __init__(self, npc_id: _Optional[str] = ..., display_name: _Optional[str] = ..., default_emotion: _Optional[_Union[_emotion_pb2.TagEmotion, _Mapping]] = ..., presets: _Optional[_Iterable[_Union[_emotion_pb2.EmotionPreset, _Mapping]]] = ..., references: _Optional[_Iterable[_Union[ReferenceImage, _Mapping]]] = ..., revision: _Optional[int] = ..., created_unix_ms: _Optional[int] = ..., updated_unix_ms: _Optional[int] = ..., streaming: _Optional[bool] = ...) -> None: ...

class RegisterNpcRequest(_message.Message):
    __slots__ = ("npc_id", "display_name", "reference_images", "default_emotion", "presets")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_EMOTION_FIELD_NUMBER: _ClassVar[int]
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    display_name: str
    reference_images: _containers.RepeatedScalarFieldContainer[bytes]
    default_emotion: _emotion_pb2.TagEmotion
    presets: _containers.RepeatedCompositeFieldContainer[_emotion_pb2.EmotionPreset]
    def __init__(self, npc_id: _Optional[str] = ..., display_name: _Optional[str] = ..., reference_images: _Optional[_Iterable[bytes]] = ..., default_emotion: _Optional[_Union[_emotion_pb2.TagEmotion, _Mapping]] = ..., presets: _Optional[_Iterable[_Union[_emotion_pb2.EmotionPreset, _Mapping]]] = ...) -> None: ...

class GetNpcRequest(_message.Message):
    __slots__ = ("npc_id", "include_images")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    include_images: bool
    def __init__(self, npc_id: _Optional[str] = ..., include_images: _Optional[bool] = ...) -> None: ...

class ListNpcsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListNpcsResponse(_message.Message):
    __slots__ = ("npcs", "next_page_token")
    NPCS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    npcs: _containers.RepeatedCompositeFieldContainer[Npc]
    next_page_token: str
    def __init__(self, npcs: _Optional[_Iterable[_Union[Npc, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReferenceImageList(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, images: _Optional[_Iterable[bytes]] = ...) -> None: ...

class EmotionPresetList(_message.Message):
    __slots__ = ("presets",)
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    presets: _containers.RepeatedCompositeFieldContainer[_emotion_pb2.EmotionPreset]
    def __init__(self, presets: _Optional[_Iterable[_Union[_emotion_pb2.EmotionPreset, _Mapping]]] = ...) -> None: ...

class UpdateNpcRequest(_message.Message):
    __slots__ = ("npc_id", "display_name", "reference_images", "default_emotion", "presets", "expected_revision")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_EMOTION_FIELD_NUMBER: _ClassVar[int]
    PRESETS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    display_name: str
    reference_images: ReferenceImageList
    default_emotion: _emotion_pb2.TagEmotion
    presets: EmotionPresetList
    expected_revision: int
    def __init__(self, npc_id: _Optional[str] = ..., display_name: _Optional[str] = ..., reference_images: _Optional[_Union[ReferenceImageList, _Mapping]] = ..., default_emotion: _Optional[_Union[_emotion_pb2.TagEmotion, _Mapping]] = ..., presets: _Optional[_Union[EmotionPresetList, _Mapping]] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class DeleteNpcRequest(_message.Message):
    __slots__ = ("npc_id",)
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    def __init__(self, npc_id: _Optional[str] = ...) -> None: ...

class DeleteNpcResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
