"""Secrets held in a type that never prints them, and maskers for URLs and option mappings.

A value becomes a `Secret` where it is parsed (Python arguments, YAML specs), so reprs,
error messages, reports, ``sesa explain`` and dead letters show ``***`` without any pass
over the text afterwards. Only the code that talks to a server calls `Secret.reveal`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MASK",
    "Secret",
    "is_secret_key",
    "mask_mapping",
    "mask_url",
    "mask_value",
    "masked_repr",
    "redact",
    "reveal",
    "reveal_tree",
    "secret_strings",
    "to_secret",
]

MASK = "***"

# Keys whose values are credentials wherever they appear (fsspec storage_options, plugin
# options, YAML connection blocks). Compared lower-case with "-" read as "_".
_SECRET_KEYS = frozenset({
    "password", "passwd", "pwd", "api_key", "apikey", "token", "secret", "key",
    "access_token", "refresh_token", "id_token", "session_token", "security_token",
    "auth_token", "bearer_token", "client_secret", "secret_key", "private_key",
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
    "account_key", "sas_token", "connection_string", "credential", "credentials",
    "authorization", "sig", "signature", "passphrase", "pass", "access_key",
    "secret_access_key",
})
_SECRET_SUFFIXES = ("_password", "_secret", "_token", "_api_key", "_account_key",
                    "_secret_key", "_private_key", "_credentials", "_signature")
# Query parameters of presigned / SAS URLs that carry the signature or a credential.
_SECRET_QUERY = frozenset({"x-amz-signature", "x-amz-credential", "x-amz-security-token",
                           "x-goog-signature", "x-goog-credential", "sig", "signature"})
# Object stores where the user part of ``scheme://user:pass@bucket`` is an access key id.
_KEY_IN_USER = frozenset({"s3", "s3a", "s3n", "gs", "gcs", "az", "abfs", "abfss", "adl",
                          "oss", "r2", "b2"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_MIN_REDACT = 4  # shorter strings would mangle ordinary words when redacted from free text


class Secret:
    """A string that prints as ``***``; `reveal` gives it back.

    >>> s = Secret("hunter2")
    >>> s, str(s), f"{s}", f"pw={s!r}"
    ('***', '***', '***', "pw='***'")
    >>> s.reveal()
    'hunter2'
    >>> s == Secret("hunter2"), s == "hunter2", len({s, Secret("hunter2")})
    (True, False, 1)
    >>> import pickle; pickle.loads(pickle.dumps(s)).reveal()
    'hunter2'
    >>> Secret(12345)
    Traceback (most recent call last):
    TypeError: a secret must be a string, got int
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a string, got {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The secret itself: for the code that authenticates, never for printing."""
        return self._value

    def masked(self) -> str:
        """What is shown instead of the value."""
        return MASK

    def __repr__(self) -> str:
        return repr(self.masked())

    def __str__(self) -> str:
        return self.masked()

    def __format__(self, spec: str) -> str:
        return format(self.masked(), spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._value,))


def to_secret(value: Secret | str | None) -> Secret | None:
    """``value`` as a `Secret` (``None`` stays ``None``); a converter for attrs fields.

    >>> to_secret("pw"), to_secret(None), to_secret(Secret("pw")) == Secret("pw")
    ('***', None, True)
    """
    if value is None or type(value) is Secret:
        return value
    return Secret(value)


def reveal(value: Secret | str | None) -> str | None:
    """The plain value of a `Secret` (a plain string or ``None`` as it is).

    >>> reveal(Secret("pw")), reveal("pw"), reveal(None)
    ('pw', 'pw', None)
    """
    return value.reveal() if isinstance(value, Secret) else value


def reveal_tree(node: Any) -> Any:
    """A copy of a parsed tree with every `Secret` revealed (for third-party code and fsspec).

    >>> reveal_tree({"key": Secret("AK"), "opts": [Secret("x"), 1]})
    {'key': 'AK', 'opts': ['x', 1]}
    """
    if isinstance(node, Secret):
        return node.reveal()
    if isinstance(node, dict):
        return {k: reveal_tree(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return type(node)(reveal_tree(v) for v in node)
    return node


def is_secret_key(name: object) -> bool:
    """True if a mapping key names a credential (``password``, ``api_key``, ``secret``, ...).

    >>> [is_secret_key(k) for k in ("Password", "aws-secret-access-key", "client_kwargs",
    ...                             "sas_token", "key", "anon", "credentials_file")]
    [True, True, False, True, True, False, True]
    """
    if not isinstance(name, str):
        return False
    k = name.lower().replace("-", "_")
    return k in _SECRET_KEYS or k.endswith(_SECRET_SUFFIXES) or k.startswith("credential")


def _split_userinfo(rest: str) -> tuple[str, str] | None:
    """``(userinfo, after)`` when ``rest`` (a URL after ``scheme://``) starts with one.

    Secrets are not always percent-encoded (AWS secret keys hold ``/``), so the userinfo is
    taken up to the first ``@`` when it has a ``:`` even past a ``/``; without a ``:`` it
    must stop before the first ``/`` (else the ``@`` belongs to the path).
    """
    at = rest.find("@")
    if at < 0:
        return None
    userinfo = rest[:at]
    if ":" not in userinfo and any(c in userinfo for c in "/?#"):
        return None
    return userinfo, rest[at + 1:]


def _mask_query(query: str) -> str:
    if not query:
        return query
    out = []
    for pair in query.split("&"):
        name, sep, _ = pair.partition("=")
        plain = urllib.parse.unquote_plus(name)
        if sep and (is_secret_key(plain) or plain.lower() in _SECRET_QUERY):
            out.append(f"{name}={MASK}")
        else:
            out.append(pair)
    return "&".join(out)


def _mask_one(url: str) -> str:
    m = _SCHEME.match(url)
    if m is None:
        return url
    scheme, rest = m.group(1).lower(), url[m.end():]
    split = _split_userinfo(rest)
    if split is not None:
        userinfo, after = split
        user, sep, _ = userinfo.partition(":")
        if scheme in _KEY_IN_USER or not sep:
            user = MASK  # an access key id, or a token given as the user
        rest = f"{user}{':' + MASK if sep else ''}@{after}"
    base, q, tail = rest.partition("?")
    if q:
        query, h, frag = tail.partition("#")
        rest = f"{base}?{_mask_query(query)}{h}{frag}"
    return f"{m.group(1)}://{rest}"


def mask_url(url: str) -> str:
    """The URL with its credentials replaced by ``***``, the rest readable.

    A password is masked; a user given alone is a token and is masked; on object stores
    (``s3://key:secret@bucket``) the user is an access key id and is masked too. Signature
    and token query parameters are masked, and each URL of an fsspec chain (``a::b``).

    >>> mask_url("https://bob:s3cret@search.example:9200/")
    'https://bob:***@search.example:9200/'
    >>> mask_url("https://ghp_token@github.com/org/repo.git")
    'https://***@github.com/org/repo.git'
    >>> mask_url("s3://AKIA123:abc/def+g@bucket/x.jsonl")
    's3://***:***@bucket/x.jsonl'
    >>> mask_url("simplecache::s3://k:s@bucket/x?versionId=3&X-Amz-Signature=ab12")
    'simplecache::s3://***:***@bucket/x?versionId=3&X-Amz-Signature=***'
    >>> mask_url("http://127.0.0.1:9200"), mask_url("out/run@2025/x.jsonl")
    ('http://127.0.0.1:9200', 'out/run@2025/x.jsonl')
    """
    if "::" in url:
        return "::".join(_mask_one(u) for u in url.split("::"))
    return _mask_one(url)


def mask_value(value: Any) -> Any:
    """A printable copy of ``value``: secrets as ``***``, URLs masked, mappings masked.

    >>> mask_value(["s3://k:s@b/x", Secret("pw"), {"token": "t0k", "n": 1}])
    ['s3://***:***@b/x', '***', {'token': '***', 'n': 1}]
    """
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, Mapping):
        return mask_mapping(value)
    if isinstance(value, (list, tuple)):
        return type(value)(mask_value(v) for v in value)
    return value


def masked_repr(value: Any) -> str:
    """``repr`` of `mask_value` (for ``attrs.field(repr=...)``).

    >>> masked_repr({"uri": "s3://k:s@b/"})
    "{'uri': 's3://***:***@b/'}"
    """
    return repr(mask_value(value))


def mask_mapping(options: Mapping[Any, Any] | None) -> dict[Any, Any]:
    """A copy of ``options`` (fsspec ``storage_options`` and the like) safe to print.

    Values under credential keys become ``***`` at any depth; URLs elsewhere are masked.

    >>> mask_mapping({"key": "AKIA", "secret": "s3cr3t", "anon": False,
    ...               "client_kwargs": {"endpoint_url": "http://u:p@127.0.0.1:9000"}})
    {'key': '***', 'secret': '***', 'anon': False, 'client_kwargs': {'endpoint_url': 'http://u:***@127.0.0.1:9000'}}
    """
    if not options:
        return {}
    return {k: (MASK if is_secret_key(k) and v is not None else mask_value(v))
            for k, v in options.items()}


def _url_secrets(url: str) -> list[str]:
    out: list[str] = []
    for one in url.split("::"):
        m = _SCHEME.match(one)
        if m is None:
            continue
        rest = one[m.end():]
        split = _split_userinfo(rest)
        if split is not None:
            user, sep, password = split[0].partition(":")
            if sep:
                out.append(password)
            if m.group(1).lower() in _KEY_IN_USER or not sep:
                out.append(user)
        _, _, tail = rest.partition("?")
        for name, value in urllib.parse.parse_qsl(tail.partition("#")[0]):
            if is_secret_key(name) or name.lower() in _SECRET_QUERY:
                out.append(value)
    return out


def secret_strings(*values: Any) -> set[str]:
    """The secret substrings held in ``values`` (Secrets, URL credentials, credential keys
    of mappings, at any depth), with their percent-decoded forms: what `redact` removes.

    >>> sorted(secret_strings("https://u:p%40ss@h", {"secret": "abc"}, Secret("x")))
    ['abc', 'p%40ss', 'p@ss', 'x']
    """
    out: set[str] = set()

    def walk(v: Any, secret: bool = False) -> None:
        if isinstance(v, Secret):
            out.add(v.reveal())
        elif isinstance(v, str):
            found = [v] if secret else _url_secrets(v)
            for s in found:
                out.update((s, urllib.parse.unquote(s)))
        elif isinstance(v, Mapping):
            for k, x in v.items():
                walk(x, secret or is_secret_key(k))
        elif isinstance(v, (list, tuple, set, frozenset)):
            for x in v:
                walk(x, secret)

    for value in values:
        walk(value)
    out.discard("")
    return out


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``.

    For messages that other libraries build from a URL or options (an fsspec error naming
    ``key:secret@bucket``): the secrets are known, so they are removed, not guessed at.
    Strings shorter than four characters are left alone (they would mangle words).

    >>> redact("cannot open AKIA1:s3cret@bucket/x", {"AKIA1", "s3cret"})
    'cannot open ***:***@bucket/x'
    """
    for s in sorted(secrets, key=len, reverse=True):
        if len(s) >= _MIN_REDACT and s in text:
            text = text.replace(s, MASK)
    return text
