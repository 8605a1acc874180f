"""Signed HTTP to the Reelhouse studio, and the ONE place where its failures become ProviderErrors.

Only 2xx answers carry money facts, so only those must bear the studio's signature; an error status is a
refusal whatever its signature, and a forged one can only make the hub refuse, never pay.
"""

import hashlib
import hmac
import json
import time

import aiohttp

from adapters.base import ProviderProtocolError, ProviderRejected, ProviderTimeout, ProviderUnavailable

TIMESTAMP_HEADER = "X-Reelhouse-Timestamp"
SIGNATURE_HEADER = "X-Reelhouse-Signature"
MAX_SKEW_S = 60


class StudioRejected(ProviderRejected):
    """A 4xx from the studio; `code` is its stable error word, e.g. ROUND_NOT_FOUND."""

    def __init__(self, status: int, code: str):
        super().__init__(f"reelhouse refused the request: {status} {code}")
        self.status = status
        self.code = code


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def expect(data: dict, name: str, kind: type):
    """A field of a studio answer with the type the protocol promises, or ProviderProtocolError."""
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ProviderProtocolError(f"reelhouse answer has no valid {name!r}")
    return value


class StudioClient:
    def __init__(self, base_url: str, secret: str, timeout_s: float):
        self._base_url = base_url.rstrip("/")
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def request(self, method: str, path: str, payload: dict | None = None) -> dict:
        body = b"" if payload is None else json.dumps(payload).encode()
        timestamp = str(int(time.time()))
        headers = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(self._secret, timestamp, body),
                   "Content-Type": "application/json"}
        try:
            async with self._http().request(method, self._base_url + path, data=body, headers=headers,
                                            timeout=self._timeout) as response:
                raw = await response.read()
        except TimeoutError as exc:
            raise ProviderTimeout(f"reelhouse did not answer {method} {path} in time") from exc
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as exc:
            raise ProviderUnavailable(f"reelhouse unreachable: {exc}") from exc
        except aiohttp.ClientError as exc:
            # The request may have been sent and acted on: the outcome is unknown, as with a timeout.
            raise ProviderTimeout(f"reelhouse connection lost during {method} {path}: {exc!r}") from exc
        return self._interpret(response.status, response.headers, raw)

    def _interpret(self, status: int, headers, raw: bytes) -> dict:
        if status >= 500:
            raise ProviderUnavailable(f"reelhouse answered {status} {_error_code(raw)}")
        if status >= 400:
            raise StudioRejected(status, _error_code(raw))
        if not 200 <= status < 300:
            raise ProviderProtocolError(f"reelhouse answered unexpected status {status}")
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= MAX_SKEW_S
        if not (fresh and hmac.compare_digest(sign(self._secret, timestamp, raw),
                                              headers.get(SIGNATURE_HEADER, ""))):
            raise ProviderProtocolError("reelhouse answer has a bad or stale signature")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ProviderProtocolError("reelhouse answer is not JSON") from exc
        if not isinstance(data, dict):
            raise ProviderProtocolError("reelhouse answer is not a JSON object")
        return data

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use so it belongs to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _error_code(raw: bytes) -> str:
    try:
        code = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return "UNKNOWN"
    return code if isinstance(code, str) else "UNKNOWN"
