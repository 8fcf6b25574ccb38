from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Form(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FORM_UNSPECIFIED: _ClassVar[Form]
    PLAINTEXT: _ClassVar[Form]
    AGGREGATE: _ClassVar[Form]
    NOISED: _ClassVar[Form]
    MASKED: _ClassVar[Form]
    SHARE: _ClassVar[Form]
    CIPHERTEXT: _ClassVar[Form]
    DIGEST: _ClassVar[Form]
    PUBLIC: _ClassVar[Form]

class RefusalReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFUSAL_REASON_UNSPECIFIED: _ClassVar[RefusalReason]
    MALFORMED: _ClassVar[RefusalReason]
    PEER_MISMATCH: _ClassVar[RefusalReason]
    UNKNOWN_SENDER: _ClassVar[RefusalReason]
    BAD_SIGNATURE: _ClassVar[RefusalReason]
    REPLAYED: _ClassVar[RefusalReason]
    OVERSIZED: _ClassVar[RefusalReason]
    WRONG_DESTINATION: _ClassVar[RefusalReason]
    DIGEST_MISMATCH: _ClassVar[RefusalReason]
    UNKNOWN_PROTOCOL: _ClassVar[RefusalReason]
    UNKNOWN_STEP: _ClassVar[RefusalReason]
    RULE_NOT_PERMITTED: _ClassVar[RefusalReason]
    GUARANTEE_VIOLATED: _ClassVar[RefusalReason]
    HANDLER_FAILED: _ClassVar[RefusalReason]
    OVERLOADED: _ClassVar[RefusalReason]
    OUT_OF_STEP: _ClassVar[RefusalReason]
    BAD_PAYLOAD: _ClassVar[RefusalReason]
FORM_UNSPECIFIED: Form
PLAINTEXT: Form
AGGREGATE: Form
NOISED: Form
MASKED: Form
SHARE: Form
CIPHERTEXT: Form
DIGEST: Form
PUBLIC: Form
REFUSAL_REASON_UNSPECIFIED: RefusalReason
MALFORMED: RefusalReason
PEER_MISMATCH: RefusalReason
UNKNOWN_SENDER: RefusalReason
BAD_SIGNATURE: RefusalReason
REPLAYED: RefusalReason
OVERSIZED: RefusalReason
WRONG_DESTINATION: RefusalReason
DIGEST_MISMATCH: RefusalReason
UNKNOWN_PROTOCOL: RefusalReason
UNKNOWN_STEP: RefusalReason
RULE_NOT_PERMITTED: RefusalReason
GUARANTEE_VIOLATED: RefusalReason
HANDLER_FAILED: RefusalReason
OVERLOADED: RefusalReason
OUT_OF_STEP: RefusalReason
BAD_PAYLOAD: RefusalReason

class Label(_message.Message):
    __slots__ = ("asset", "form")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    FORM_FIELD_NUMBER: _ClassVar[int]
    asset: str
    form: Form
    def __init__(self, asset: _Optional[str] = ..., form: _Optional[_Union[Form, str]] = ...) -> None: ...

class EnvelopeHeader(_message.Message):
    __slots__ = ("sender", "receiver", "run_id", "session_id", "protocol", "step", "sequence", "labels", "payload_size", "payload_sha256", "sent_at_unix_ns")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SHA256_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    sender: str
    receiver: str
    run_id: str
    session_id: str
    protocol: str
    step: str
    sequence: int
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    payload_size: int
    payload_sha256: bytes
    sent_at_unix_ns: int
    def __init__(self, sender: _Optional[str] = ..., receiver: _Optional[str] = ..., run_id: _Optional[str] = ..., session_id: _Optional[str] = ..., protocol: _Optional[str] = ..., step: _Optional[str] = ..., sequence: _Optional[int] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., payload_size: _Optional[int] = ..., payload_sha256: _Optional[bytes] = ..., sent_at_unix_ns: _Optional[int] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("header", "signature", "payload")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    header: bytes
    signature: bytes
    payload: bytes
    def __init__(self, header: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., payload: _Optional[bytes] = ...) -> None: ...

class Refusal(_message.Message):
    __slots__ = ("reason", "detail")
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    reason: RefusalReason
    detail: str
    def __init__(self, reason: _Optional[_Union[RefusalReason, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class Answer(_message.Message):
    __slots__ = ("reply", "done")
    REPLY_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    reply: bytes
    done: bool
    def __init__(self, reply: _Optional[bytes] = ..., done: _Optional[bool] = ...) -> None: ...
