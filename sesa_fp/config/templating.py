"""``{{ var }}`` in YAML string values, rendered in a sandbox with strict undefined variables.

Airflow's daily macros are derived from ``ds`` when not given, the way Airflow derives them
for a ``@daily`` schedule, so ``--set ds=2025-09-06`` alone gives ``next_ds = 2025-09-07``.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from sesa_fp.errors import ConfigError
from sesa_fp.secrets import Secret, is_secret_key, mask_value

__all__ = ["airflow_macros", "render_tree", "template_vars"]

_USES_ENV = re.compile(r"(\{\{|\{%)[^}]*\benv\b")
_env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                     keep_trailing_newline=True)


def airflow_macros(variables: Mapping[str, str]) -> dict[str, str]:
    """Airflow's daily date macros derived from ``ds`` (and ``ts_nodash`` if given).

    >>> m = airflow_macros({"ds": "2025-09-06"})
    >>> m["next_ds"], m["prev_ds"], m["ds_nodash"], m["ts"], m["ts_nodash"]
    ('2025-09-07', '2025-09-05', '20250906', '2025-09-06T00:00:00+00:00', '20250906T000000')
    """
    ds = variables.get("ds")
    if ds is None:
        return {}
    try:
        day = _dt.date.fromisoformat(ds)
    except ValueError as exc:
        raise ConfigError(f"--set ds={ds!r}: expected a date like 2025-09-06") from exc
    nxt, prev = day + _dt.timedelta(days=1), day - _dt.timedelta(days=1)
    return {
        "ds_nodash": day.strftime("%Y%m%d"),
        "next_ds": nxt.isoformat(),
        "next_ds_nodash": nxt.strftime("%Y%m%d"),
        "prev_ds": prev.isoformat(),
        "prev_ds_nodash": prev.strftime("%Y%m%d"),
        "ts": f"{day.isoformat()}T00:00:00+00:00",
        "ts_nodash": day.strftime("%Y%m%dT000000"),
    }


def template_vars(sets: Mapping[str, str], environ: Mapping[str, str] | None = None
                  ) -> dict[str, Any]:
    """Variables for rendering: derived macros, then ``--set`` values (which win), and ``env``.

    Environment variables are reachable only as ``{{ env.NAME }}``.
    """
    out: dict[str, Any] = {**airflow_macros(sets), **sets}
    out["env"] = dict(os.environ if environ is None else environ)
    return out


def _render(text: str, variables: Mapping[str, Any], where: str, secret: bool = False) -> str:
    if "{{" not in text and "{%" not in text:
        return text
    shown = "(a secret value)" if secret else repr(mask_value(text))
    try:
        return _env.from_string(text).render(variables)
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"{where}: template variable is not defined: {exc.message} "
                          "(pass it with --set NAME=VALUE)") from exc
    except SecurityError as exc:
        raise ConfigError(f"{where}: template refused by the sandbox: {exc}") from exc
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{where}: bad template {shown}: {exc}") from exc


def render_tree(node: Any, variables: Mapping[str, Any], where: str = "") -> Any:
    """Render every string in a parsed YAML tree; structure is never re-parsed.

    A value under a credential key (``password``, ``api_key``, ``secret``, ...) rendered
    from ``{{ env.NAME }}`` is returned as a `Secret`: it is masked from the moment it exists.

    >>> render_tree({"q": {"gte": "{{ ds }}"}, "n": 3}, {"ds": "2025-09-06"})
    {'q': {'gte': '2025-09-06'}, 'n': 3}
    >>> render_tree({"password": "{{ env.PW }}"}, {"env": {"PW": "hunter2"}})
    {'password': '***'}
    >>> render_tree({"a": "{{ nope }}"}, {})
    Traceback (most recent call last):
    sesa_fp.errors.ConfigError: a: template variable is not defined: 'nope' is undefined ...
    """
    if isinstance(node, str):
        return _render(node, variables, where or "value")
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            at = f"{where}.{k}" if where else str(k)
            if isinstance(v, str) and is_secret_key(k):
                text = _render(v, variables, at, secret=True)
                out[k] = Secret(text) if _USES_ENV.search(v) else text
            else:
                out[k] = render_tree(v, variables, at)
        return out
    if isinstance(node, list):
        return [render_tree(v, variables, f"{where}[{i}]") for i, v in enumerate(node)]
    return node
