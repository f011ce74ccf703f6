"""A ``kfp.Client`` whose every request to the KFP API is bounded, and its errors in one line.

``kfp.Client`` sets no timeout: its constructor asks the API's healthz (kfp 2.17.3,
``kfp/client/client.py`` ``Client.__init__``), retrying an HTTP error five times five seconds
apart, and every later call goes through urllib3 with no timeout and three retries, so a silent
server hangs the command forever. Here each request may take ``timeout`` seconds to connect and
as long to answer, is retried only on a failed connection (twice), and the healthz is asked once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

#: Seconds one request to the KFP API may take to connect, and again to answer.
REQUEST_TIMEOUT = 30.0
#: Retries of a request whose connection failed (never of one sent: it may have been applied).
CONNECT_RETRIES = 2


def redact(uri: str) -> str:
    """``uri`` with any user:password replaced by ``***``."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return parts._replace(netloc=f"***@{host}").geturl()


def bounded_client(kwargs: dict[str, Any], timeout: float = REQUEST_TIMEOUT) -> Any:
    """``kfp.Client(**kwargs)`` with every request bounded by ``timeout`` (see above)."""
    import kfp
    import urllib3

    retries = urllib3.Retry(
        total=CONNECT_RETRIES, connect=CONNECT_RETRIES, read=0, status=0, other=0, redirect=2
    )
    bound = (timeout, timeout)  # (connect, read): kfp_server_api/rest.py RESTClientObject.request

    class BoundedClient(kfp.Client):
        def _load_config(self, *args: Any, **kw: Any) -> Any:
            config = super()._load_config(*args, **kw)
            config.retries = retries  # read by kfp_server_api's RESTClientObject
            return config

        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            """Asked once by the constructor, bounded; errors propagate."""
            return self._healthz_api.healthz_service_get_healthz(_request_timeout=bound)

    client = BoundedClient(**kwargs)
    # Every API of the client shares this REST client. It passes the request's own timeout
    # (None: wait forever) to urllib3, which then ignores any pool default: give it one.
    rest = client._healthz_api.api_client.rest_client
    send = rest.request

    def request(*args: Any, **kw: Any) -> Any:
        if kw.get("_request_timeout") is None:
            kw["_request_timeout"] = bound
        return send(*args, **kw)

    rest.request = request
    return client


def api_error(host: str, error: BaseException) -> str | None:
    """One line for a failed request to the KFP API at ``host`` (no credentials), or None."""
    import kfp_server_api
    import urllib3

    where = f"the KFP API at {redact(host)}"
    if isinstance(error, kfp_server_api.ApiException):
        if not error.status:
            return f"cannot reach {where} ({error.reason})"
        return f"{where} answered HTTP {error.status} {error.reason or ''}".rstrip()
    if isinstance(error, urllib3.exceptions.HTTPError | OSError):
        reason = getattr(error, "reason", None) or error
        if isinstance(reason, urllib3.exceptions.HTTPError | OSError):
            reason = type(reason).__name__ if not str(reason) else str(reason)
        text = str(reason).replace(host, redact(host)).splitlines()[0][:300]
        return f"cannot reach {where} ({text})"
    return None
