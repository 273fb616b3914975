"""Connection settings shared by `es_source` and `load_es`, engine detection, masked reprs."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from sesa_fp.errors import ConfigError
from sesa_fp.logs import log_event
from sesa_fp.search.errors import SearchTransportError
from sesa_fp.secrets import MASK, Secret, mask_url, mask_value, reveal, to_secret

__all__ = [
    "DEFAULT_HOSTS",
    "ENGINES",
    "SearchConfig",
    "kwargs_repr",
    "mask_url",
]

DEFAULT_HOSTS = ("http://127.0.0.1:9200",)
ENGINES = ("auto", "elasticsearch", "opensearch")
_CREDS_CONFLICT = ("hosts: the credentials in the host URLs differ from each other or from "
                   "username/password; give them once")


def _hosts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or \
            not all(isinstance(h, str) and h for h in value):
        raise ConfigError(f"hosts must be a non-empty list of URLs, got {mask_value(value)!r}")
    out = []
    for h in value:
        if "://" not in h:
            h = "http://" + h
        out.append(h.rstrip("/"))
    return tuple(out)


def _engine(value: Any) -> str:
    if value not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}; got {value!r}")
    return str(value)


def _timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {value!r}")
    return float(value)


@attrs.frozen(kw_only=True)
class SearchConfig:
    """Where and how to connect; validated on construction (no I/O), secrets held as `Secret`.

    >>> SearchConfig(hosts=["127.0.0.1:9200"], password="pw").hosts
    ('http://127.0.0.1:9200',)
    >>> SearchConfig(hosts=["https://etl:pw123@es:9200"])  # credentials leave the URL
    SearchConfig(engine='auto', hosts=('https://es:9200',), username='etl', password='***', ...)
    >>> SearchConfig(engine="solr")
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: engine must be one of auto, elasticsearch, opensearch; got 'solr'
    """

    engine: str = attrs.field(default="auto", converter=_engine)
    hosts: tuple[str, ...] = attrs.field(default=DEFAULT_HOSTS, converter=_hosts)
    username: str | None = None
    password: Secret | None = attrs.field(default=None, converter=to_secret)
    api_key: Secret | None = attrs.field(default=None, converter=to_secret)
    verify_certs: bool = True
    ca_certs: str | None = None
    timeout: float = attrs.field(default=30.0, converter=_timeout)

    def __attrs_post_init__(self) -> None:
        # Credentials written into a host URL move to username/password here, so no host
        # string this config hands on (to clients, logs, errors) holds a secret.
        self._move_url_credentials()
        if self.api_key is not None and self.username is not None:
            raise ConfigError("search connection: give either username/password (or "
                              "credentials in the host URL) or api_key, not both")

    def _move_url_credentials(self) -> None:
        found: set[tuple[str, str | None]] = set()
        hosts = []
        for h in self.hosts:
            parts = urllib.parse.urlsplit(h)
            if "@" not in parts.netloc:
                hosts.append(h)
                continue
            userinfo, _, hostport = parts.netloc.rpartition("@")
            user, sep, pw = userinfo.partition(":")
            found.add((urllib.parse.unquote(user),
                       urllib.parse.unquote(pw) if sep else None))
            hosts.append(urllib.parse.urlunsplit(parts._replace(netloc=hostport)))
        if not found:
            return
        if len(found) > 1:
            raise ConfigError(_CREDS_CONFLICT)
        (url_user, url_pw), = found
        if (self.username is not None and self.username != url_user) or (
                url_pw is not None and self.password is not None
                and self.password.reveal() != url_pw):
            raise ConfigError(_CREDS_CONFLICT)
        object.__setattr__(self, "hosts", tuple(hosts))
        object.__setattr__(self, "username", url_user)
        if url_pw is not None:
            object.__setattr__(self, "password", Secret(url_pw))

    @property
    def host(self) -> str:
        """The first host, secrets masked (what error messages and reports name)."""
        return mask_url(self.hosts[0])

    def repr_items(self) -> list[tuple[str, str]]:
        """``(name, repr)`` of the non-default connection arguments; hosts always, secrets
        masked."""
        out = [("hosts", repr([mask_url(h) for h in self.hosts]))]
        if self.engine != "auto":
            out.append(("engine", repr(self.engine)))
        if self.username is not None:
            out.append(("username", repr(self.username)))
        if self.password is not None:
            out.append(("password", repr(MASK)))
        if self.api_key is not None:
            out.append(("api_key", repr(MASK)))
        if not self.verify_certs:
            out.append(("verify_certs", "False"))
        if self.ca_certs is not None:
            out.append(("ca_certs", repr(self.ca_certs)))
        if self.timeout != 30.0:
            out.append(("timeout", repr(self.timeout)))
        return out

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header for plain HTTP calls (engine detection)."""
        if self.api_key:
            return {"Authorization": f"ApiKey {self.api_key.reveal()}"}
        user, pw = self.username, reveal(self.password)
        if user is not None:
            token = base64.b64encode(f"{user}:{pw or ''}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.hosts[0].startswith("https"):
            return None
        ctx = ssl.create_default_context(cafile=self.ca_certs)
        if not self.verify_certs:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def root_info(self) -> dict[str, Any]:
        """``GET /`` on the first host with plain urllib; `SearchTransportError` if it fails."""
        parts = urllib.parse.urlsplit(self.hosts[0])
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc += f":{parts.port}"
        url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
        req = urllib.request.Request(url, headers={"Accept": "application/json",
                                                   **self.auth_headers()})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout,
                                        context=self.ssl_context()) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            reason = exc.read()[:500].decode("utf-8", "replace")
            raise SearchTransportError(host=self.host, status=exc.code, error_type="http_error",
                                       reason=reason or str(exc.reason)) from exc
        except (OSError, ValueError) as exc:  # URLError, refused, timeout, TLS
            raise SearchTransportError(host=self.host, status=None,
                                       error_type=type(exc).__name__, reason=str(exc)) from exc
        try:
            info = json.loads(body)
        except ValueError:
            info = None
        if not isinstance(info, dict):
            raise SearchTransportError(host=self.host, status=200, error_type="bad_response",
                                       reason=f"GET / is not a JSON object: {body[:200]!r}")
        return info

    def resolve(self, call: Callable[[Callable[[], dict[str, Any]]], dict[str, Any]]
                ) -> SearchConfig:
        """This config with ``engine`` set to what the first host runs.

        ``call`` runs the probe with the caller's retry policy. OpenSearch is recognised by
        ``version.distribution``, also when ``engine="elasticsearch"`` was asked for (ES-era
        configs pointed at AWS OpenSearch). Hosts that hide ``GET /`` (401/403) keep the
        configured engine (``auto`` then means Elasticsearch).
        """
        requested = self.engine
        try:
            info = call(self.root_info)
        except SearchTransportError as exc:
            if exc.status not in (401, 403):
                raise
            info = {}
        raw = info.get("version")
        version: dict[str, Any] = raw if isinstance(raw, dict) else {}
        distribution = str(version.get("distribution") or "")
        if distribution == "opensearch":
            engine = "opensearch"
        else:
            engine = "elasticsearch" if requested == "auto" else requested
        log_event("search_engine_detected", host=self.host, requested=requested, engine=engine,
                  distribution=distribution or None, version=version.get("number"),
                  adapter=f"sesa_fp.search.{engine}")
        return attrs.evolve(self, engine=engine)


def kwargs_repr(name: str, items: Sequence[tuple[str, str]]) -> str:
    """``name(k=v, ...)``, one line.

    >>> kwargs_repr("f", [("a", "1"), ("b", "'x'")])
    "f(a=1, b='x')"
    """
    return f"{name}({', '.join(f'{k}={v}' for k, v in items)})"
