"""Courier's AsyncAPI 3.0 document, generated from the code.

FastStream describes every subscriber and publisher the composition root
declares: their topics, titles and descriptions, and the publishers' message
models. A subscriber's payload schema would come from its handler's
parameters, but Courier's handlers take the raw batch (each worker decodes
its records itself, so that one bad record is dead-lettered instead of
failing the batch); :class:`CourierAsyncAPI` therefore puts the wire model of
each consumed topic on its channel.

``make docs`` writes ``docs/asyncapi.yaml`` with
``faststream docs gen --factory workers.docs:docs_app``; ``courier docs
serve`` shows it: FastStream's AsyncAPI page at ``/`` (its viewer script
loads from a CDN), and the document itself at ``/asyncapi.yaml`` and
``/asyncapi.json``, which need nothing from outside.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.site import get_asyncapi_html
from faststream.specification.asyncapi.v3_0_0.schema import (
    ApplicationSchema,
    Message,
    Reference,
)
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts import (
    ConversationUpserted,
    DirectoryChanged,
    MessageChanged,
    MessageDTO,
    MessageSubmitted,
    ReceiptReported,
    Topics,
    UserUpserted,
)

if TYPE_CHECKING:
    from faststream import FastStream
    from faststream.kafka import KafkaBroker
    from faststream.specification.base import Specification

DESCRIPTION = """\
Courier persists ID-only chat events from upstream services to MongoDB,
advances each message's delivery status so that it never goes backwards, and
publishes an enriched DTO for every change.

Records are UTF-8 JSON. Keys: the conversation id on every topic except
chat.users.v1, which is keyed by the user id. Fields not named in a schema are
ignored. Every inbound event carries event_id and schema_version 1.
"""


def wire_models(topics: Topics) -> dict[str, type[BaseModel]]:
    """The model of one record on each topic that carries JSON."""
    return {
        topics.users: UserUpserted,
        topics.conversations: ConversationUpserted,
        topics.messages: MessageSubmitted,
        topics.receipts: ReceiptReported,
        topics.message_changes: MessageChanged,
        topics.directory_changes: DirectoryChanged,
        topics.client_messages: MessageDTO,
    }


class CourierAsyncAPI(AsyncAPI):
    """FastStream's AsyncAPI 3.0 factory, with each topic's wire model."""

    def __init__(self, broker: KafkaBroker, topics: Topics, version: str) -> None:
        super().__init__(
            broker,
            title="Courier",
            version=version,
            description=DESCRIPTION,
            license={"name": "Apache-2.0"},
            schema_version="3.0.0",
        )
        self.topics = topics

    def to_specification(self) -> Specification:
        schema = super().to_specification()
        assert isinstance(schema, ApplicationSchema)
        models = wire_models(self.topics)
        _, defs = models_json_schema(
            [(m, "validation") for m in models.values()],
            ref_template="#/components/schemas/{model}",
        )
        assert schema.components is not None
        messages = schema.components.messages or {}
        schemas: dict[str, Any] = schema.components.schemas or {}
        schemas.update(defs.get("$defs", {}))
        for channel in schema.channels.values():
            model = models.get(channel.address or "")
            for ref in channel.messages.values():
                message = _resolve(ref, messages)
                if model is not None and message is not None:
                    message.payload = {"$ref": f"#/components/schemas/{model.__name__}"}
        used = {m.payload.get("$ref") for m in messages.values()}
        for name in [
            n for n in schemas if n.endswith(":Payload") or n == "EmptyPayload"
        ]:
            if f"#/components/schemas/{name}" not in used:
                del schemas[name]
        # FastStream keeps subscribers in no fixed order; sort, so that the
        # same code always gives the same document.
        schema.channels = dict(sorted(schema.channels.items()))
        schema.operations = dict(sorted(schema.operations.items()))
        schema.components.messages = dict(sorted(messages.items()))
        schema.components.schemas = dict(sorted(schemas.items()))

        return schema


def _resolve(ref: Message | Reference, messages: dict[str, Message]) -> Message | None:
    if isinstance(ref, Message):
        return ref
    name = ref.ref.removeprefix("#/components/messages/")
    return messages.get(name)


def docs_app() -> FastStream:
    """The app ``faststream docs gen`` reads: every worker, default settings.

    Defaults rather than the environment, so that the document is the same
    wherever it is generated.
    """
    from workers.app import build_app
    from workers.settings import Settings

    app, _ = build_app(
        Settings.model_construct(), ["directory", "status", "enrichment"]
    )

    return app


def docs_server(host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for the document; the caller runs ``serve_forever``."""
    spec = docs_app().schema.to_specification()
    pages = {
        "/": ("text/html", get_asyncapi_html(spec)),
        "/asyncapi.yaml": ("application/yaml", spec.to_yaml()),
        "/asyncapi.json": ("application/json", spec.to_json()),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            kind, text = pages.get(
                self.path.split("?")[0],
                ("text/plain", "try /, /asyncapi.yaml or /asyncapi.json\n"),
            )
            body = text.encode("utf-8")
            self.send_response(200 if kind != "text/plain" else 404)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return ThreadingHTTPServer((host, port), Handler)
