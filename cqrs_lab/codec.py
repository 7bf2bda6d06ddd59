"""Event type registry, JSON encoding and decoding, and upcasters.

Events are stored as JSON text with their ``event_type`` and ``event_version``.
Decoding looks the type up in a registry (every ``Event`` subclass registers
itself with ``default_codec``). When a stored version is older than the class,
upcasters registered for ``(event_type, version)`` turn the stored JSON into the
newer shape, in a chain, at load time; stored rows are never rewritten.

What every store can keep and read back (commits and imports are checked against it):
JSON nested at most ``MAX_JSON_DEPTH`` levels (pydantic's JSON parser refuses deeper
documents), at most ``MAX_JSON_BYTES`` of payload and of metadata per event, and
aggregate types and ids of at most ``MAX_KEY_BYTES`` (PostgreSQL indexes them; a B-tree
entry holds about 2.7 kB).
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from pydantic import TypeAdapter, ValidationError

from cqrs_lab.domain import Event
from cqrs_lab.errors import (
    ConfigurationError,
    CorruptRecordError,
    UnknownEventTypeError,
    UnstorableEventError,
)

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_KEY_BYTES",
    "EventCodec",
    "EventTypeConflictWarning",
    "StoredEvent",
    "Upcaster",
    "Where",
    "decode_metadata",
    "default_codec",
    "encode_metadata",
    "where_text",
]

MAX_JSON_DEPTH = 200
"""Levels of JSON objects and arrays a payload or metadata may nest around a value
(the event's own object included); pydantic's JSON parser refuses deeper documents,
so an event nested deeper could be stored but never loaded."""

MAX_JSON_BYTES = 16 * 1024 * 1024
"""The largest payload, and the largest metadata, of one event: 16 MiB of UTF-8 JSON
(PostgreSQL's JSONB holds up to 255 MB; events are facts, not files)."""

MAX_KEY_BYTES = 1024
"""The longest aggregate type, and the longest aggregate id, in UTF-8 bytes: both are
in PostgreSQL's unique index, whose entries cannot exceed about 2.7 kB."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the stored JSON object of an older event version into the next version's."""


Where = str | Callable[[], str]
"""Names a stored row in error messages; a callable is called only when there is an error,
so decoding a good row does not pay for formatting its name."""


def where_text(where: Where) -> str:
    """The row name of ``where`` (calling it if it is a callable)."""
    return where if isinstance(where, str) else where()


class EventTypeConflictWarning(UserWarning):
    """Two different classes registered the same ``event_type``; the later one wins."""


class StoredEvent(NamedTuple):
    """An event row as stores keep it: payload and metadata are JSON text.

    A NamedTuple, not a dataclass: one is built per row read, and tuple creation
    costs a third of a frozen dataclass's (the log-reading benchmark W4 feels it).
    """

    aggregate_type: str
    aggregate_id: str
    sequence: int
    event_type: str
    event_version: str
    payload: str
    metadata: str
    recorded_at: Any
    event_id: str
    position: int = 0

    def values(self) -> tuple[Any, ...]:
        """Every column but ``position``, in ``StoredEvent`` order (what commits insert)."""
        return self[:9]


def encode_metadata(metadata: dict[str, str] | Any, where: Where = "event") -> str:
    """The JSON text stored for a metadata map, which must map strings to strings;
    ``where`` names the event in the ``UnstorableEventError`` for anything else."""
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            bad = key if not isinstance(key, str) else value
            raise UnstorableEventError(
                f"cannot store {where_text(where)}: its metadata must map strings to strings, but "
                f"key {key!r} {'is' if bad is key else 'holds'} a {type(bad).__name__}. Nothing "
                "was stored; convert the values to text (str(value)) first."
            )
    return json.dumps(dict(metadata), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# The schema validator itself: TypeAdapter.validate_json adds per-call work that costs
# more than parsing a command's metadata (read_all decodes one per command).
_STRING_MAP = TypeAdapter(dict[str, str]).validator


def decode_metadata(text: str | dict[str, Any] | None, where: Where) -> dict[str, str]:
    if text is None:
        return {}
    if isinstance(text, str):
        # Fast path: parse and check in one call; anything else (non-string values
        # to coerce, bad JSON to explain) takes the general path below.
        try:
            return _STRING_MAP.validate_json(text)  # type: ignore[no-any-return]
        except ValidationError:
            pass
    try:
        value = json.loads(text) if isinstance(text, str | bytes) else text
    except (ValueError, RecursionError) as exc:
        raise CorruptRecordError(
            f"{where_text(where)}: metadata is not valid JSON ({exc}). "
            "Repair or delete that row; nothing was changed."
        ) from exc
    if not isinstance(value, dict):
        raise CorruptRecordError(
            f"{where_text(where)}: metadata is not a JSON object. "
            "Repair or delete that row; nothing was changed."
        )
    return {str(k): str(v) for k, v in value.items()}


class EventCodec:
    """Maps event types to classes and events to and from stored JSON."""

    def __init__(self, events: Iterable[type[Event]] = ()) -> None:
        self._types: dict[str, type[Event]] = {}
        self._upcasters: dict[tuple[str, str], tuple[str, Upcaster]] = {}
        self._lock = threading.Lock()
        for cls in events:
            self.register(cls)

    def register(self, cls: type[Event]) -> type[Event]:
        """Make ``cls`` decodable under its ``event_type``; returns it (usable as a decorator)."""
        with self._lock:
            old = self._types.get(cls.event_type)
            if (
                old is not None
                and old is not cls
                and (
                    old.__module__,
                    old.__qualname__,
                )
                != (cls.__module__, cls.__qualname__)
            ):
                warnings.warn(
                    f"event type {cls.event_type!r} was registered by "
                    f"{old.__module__}.{old.__qualname__} and is now taken by "
                    f"{cls.__module__}.{cls.__qualname__}; set a distinct `event_type` "
                    "class attribute on one of them",
                    EventTypeConflictWarning,
                    stacklevel=4,
                )
            self._types[cls.event_type] = cls
        return cls

    def event_class(self, event_type: str) -> type[Event] | None:
        return self._types.get(event_type)

    @property
    def event_types(self) -> dict[str, type[Event]]:
        return dict(self._types)

    def register_upcaster(
        self, event_type: str, from_version: str, to_version: str, upcaster: Upcaster
    ) -> None:
        """Register ``upcaster`` turning ``event_type`` at ``from_version`` into ``to_version``."""
        if from_version == to_version:
            raise ConfigurationError(
                f"upcaster for {event_type!r} goes from {from_version!r} to itself; "
                "it must go to a different version"
            )
        with self._lock:
            self._upcasters[(event_type, from_version)] = (to_version, upcaster)

    def upcaster(self, event_type: str, from_version: str, to_version: str) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of ``register_upcaster``."""

        def decorate(fn: Upcaster) -> Upcaster:
            self.register_upcaster(event_type, from_version, to_version, fn)
            return fn

        return decorate

    def encode(self, event: Event) -> str:
        """The JSON text stored for ``event``."""
        return event.model_dump_json()

    def validator(self, event_type: str, event_version: str) -> Callable[[str], Event] | None:
        """A function that validates a JSON payload of ``event_type`` stored at
        ``event_version`` straight into its class, or None when that takes more
        (an unknown type, an upcast): then use ``decode``. Stores fetch it once per
        batch of rows; its errors are pydantic's, so on one, call ``decode`` for the
        row to get the message that names it."""
        cls = self._types.get(event_type)
        if cls is None or event_version != cls.event_version:
            return None
        return cls.__pydantic_validator__.validate_json

    def decode(
        self,
        event_type: str,
        event_version: str,
        payload: str | dict[str, Any],
        where: Where,
    ) -> Event:
        """Decode a stored payload, upcasting older versions; ``where`` names the row in errors."""
        cls = self._types.get(event_type)
        if cls is None:
            known = ", ".join(sorted(self._types)) or "none"
            raise UnknownEventTypeError(
                f"{where_text(where)}: unknown event type {event_type!r} (version {event_version}). "
                f"Define an Event subclass with event_type = {event_type!r} and import it "
                f"before loading (registered types: {known})."
            )
        try:
            if event_version == cls.event_version and isinstance(payload, str):
                # What model_validate_json does, without its per-call argument handling
                # (a third of the cost for a small event; this runs for every stored row).
                return cls.__pydantic_validator__.validate_json(payload)  # type: ignore[no-any-return]
            data: dict[str, Any] = json.loads(payload) if isinstance(payload, str) else payload
            version = event_version
            seen = {version}
            while version != cls.event_version:
                step = self._upcasters.get((event_type, version))
                if step is None:
                    raise UnknownEventTypeError(
                        f"{where_text(where)}: event {event_type!r} is stored at version {version}, "
                        f"but {cls.__qualname__} is version {cls.event_version} and no "
                        f"upcaster goes from {version}. Register one with "
                        f"codec.register_upcaster({event_type!r}, {version!r}, ...)."
                    )
                stored_version, (version, fn) = version, step
                if version in seen:
                    raise ConfigurationError(f"upcasters for {event_type!r} form a cycle at {version}")
                seen.add(version)
                data = _upcast(fn, data, event_type, stored_version, version, where)
            return cls.model_validate(data)
        except (ValidationError, ValueError, RecursionError) as exc:
            if isinstance(exc, UnknownEventTypeError | ConfigurationError | CorruptRecordError):
                raise
            raise CorruptRecordError(
                f"{where_text(where)}: the stored {event_type!r} payload does not decode "
                f"as {cls.__qualname__}: {exc}. The row is left as it is; fix the data, "
                "the class, or register an upcaster."
            ) from exc


def _upcast(
    fn: Upcaster, data: dict[str, Any], event_type: str, from_version: str, to_version: str, where: Where
) -> dict[str, Any]:
    """``fn(data)``; any exception it raises becomes ``CorruptRecordError`` naming the row."""
    try:
        return fn(dict(data))
    except Exception as exc:
        name = getattr(fn, "__qualname__", repr(fn))
        raise CorruptRecordError(
            f"{where_text(where)}: upcaster {name} of {event_type!r} from version {from_version} "
            f"to {to_version} raised {exc!r}. The row is left as it is; fix the upcaster (the "
            "original exception is the __cause__)."
        ) from exc


default_codec = EventCodec()
"""The codec every ``Event`` subclass registers with, used by stores by default."""
