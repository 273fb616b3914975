"""Elasticsearch adapter (elasticsearch-py 8.x/9.x): PIT via ``open_point_in_time``."""

from __future__ import annotations

from typing import Any, ClassVar

from sesa_fp import codec
from sesa_fp.search.base import SearchClient
from sesa_fp.search.errors import SearchTransportError
from sesa_fp.search.util import error_details, require
from sesa_fp.secrets import reveal

__all__ = ["ElasticsearchClient"]


def _codec_serializers() -> dict[str, Any]:
    """elasticsearch-py's JSON and NDJSON serializers on `sesa_fp.codec` (both mimetypes and
    their compatibility-mode twins): orjson's speed, integers beyond 64 bits exact both ways."""
    from elasticsearch import serializer as es

    class Json(es.JsonSerializer):
        def json_dumps(self, data: Any) -> bytes:
            return codec.dumps(data)

        def json_loads(self, data: bytes) -> Any:
            return codec.loads(data)

    class Ndjson(Json, es.NdjsonSerializer):
        mimetype: ClassVar[str] = "application/x-ndjson"

    json_s, ndjson_s = Json(), Ndjson()
    return {"application/json": json_s, "application/vnd.elasticsearch+json": json_s,
            "application/x-ndjson": ndjson_s,
            "application/vnd.elasticsearch+x-ndjson": ndjson_s}


class ElasticsearchClient(SearchClient):
    """elasticsearch-py behind the `SearchClient` interface; ``_shard_doc`` is the PIT order.

    The client refuses servers that are not Elasticsearch (its product check); engine
    detection sends OpenSearch clusters to the OpenSearch adapter before that happens.
    """

    engine: ClassVar[str] = "elasticsearch"
    pit_sort: ClassVar[list[Any]] = ["_shard_doc"]

    def _make(self) -> Any:
        mod = require("elasticsearch", "es")
        c = self.config
        kw: dict[str, Any] = {
            "request_timeout": c.timeout, "max_retries": 0, "retry_on_timeout": False,
            "verify_certs": c.verify_certs,
        }
        if not c.verify_certs:
            kw["ssl_show_warn"] = False
        if c.ca_certs:
            kw["ca_certs"] = c.ca_certs
        if c.username is not None:
            kw["basic_auth"] = (c.username, reveal(c.password) or "")
        if c.api_key:
            kw["api_key"] = c.api_key.reveal()
        return mod.Elasticsearch(hosts=list(c.hosts), serializers=_codec_serializers(), **kw)

    def _translate(self, exc: Exception) -> SearchTransportError | None:
        import elastic_transport
        import elasticsearch

        if isinstance(exc, elasticsearch.UnsupportedProductError):
            return SearchTransportError(
                host=self.host, status=None if exc.meta is None else exc.meta.status,
                error_type="unsupported_product",
                reason="the server is not Elasticsearch (use engine='auto' or 'opensearch')")
        if isinstance(exc, elasticsearch.ApiError):
            etype, reason = error_details(exc.body, str(exc.message))
            return SearchTransportError(host=self.host, status=exc.meta.status,
                                        error_type=etype, reason=reason)
        if isinstance(exc, elastic_transport.TransportError):  # connection, timeout, TLS
            return SearchTransportError(host=self.host, status=None,
                                        error_type=type(exc).__name__, reason=str(exc))
        return None

    def open_point_in_time(self, index: str, keep_alive: str) -> dict[str, Any]:
        return dict(self._call(self.client.open_point_in_time, index=index,
                               keep_alive=keep_alive))

    def open_pit(self, index: str, keep_alive: str) -> str:
        return str(self.open_point_in_time(index, keep_alive)["id"])

    def close_pit(self, pit_id: str) -> None:
        self._call(self.client.close_point_in_time, id=pit_id)

    def _search(self, body: dict[str, Any], index: str | None,
                params: dict[str, Any] | None) -> Any:
        kw: dict[str, Any] = dict(params or {})
        if index is not None:
            kw["index"] = index
        return self.client.search(body=body, **kw)

    def scroll(self, scroll_id: str, keep_alive: str) -> dict[str, Any]:
        return dict(self._call(self.client.scroll, scroll_id=scroll_id, scroll=keep_alive))

    def clear_scroll(self, scroll_id: str) -> None:
        self._call(self.client.clear_scroll, scroll_id=scroll_id)

    def bulk(self, body: bytes, *, pipeline: str | None = None,
             refresh: str | None = None) -> dict[str, Any]:
        kw = {k: v for k, v in (("pipeline", pipeline), ("refresh", refresh)) if v}
        return dict(self._call(self.client.bulk, operations=body, **kw))

    def _create_index(self, name: str, body: dict[str, Any]) -> Any:
        return self.client.indices.create(index=name, **body)
