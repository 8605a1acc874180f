"""JSON over HTTP with `Authorization: Bearer <secret>`: how the hub calls a studio that takes its pull calls
(catalog, launch, health) that way. Every failure is mapped onto the adapters.base ProviderError tree."""

import aiohttp

from adapters.base import (
    ProviderError,
    ProviderProtocolError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)


class BearerJsonClient:
    def __init__(self, studio: str, base_url: str, secret: str, timeout_s: float):
        self._studio = studio
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {secret}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def request(self, method: str, path: str, payload: dict | None = None) -> dict:  # type: ignore[type-arg]
        """The studio's JSON object; 5xx is ProviderUnavailable (nothing applied), 4xx ProviderRejected."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        studio = self._studio
        try:
            async with self._session.request(method, self._base + path, json=payload, headers=self._headers,
                                             timeout=self._timeout) as response:
                status = response.status
                data = await response.json(content_type=None)
        except TimeoutError as exc:
            raise ProviderTimeout(f"{studio} did not answer {method} {path} in time") from exc
        except aiohttp.ClientError as exc:
            raise ProviderUnavailable(f"{studio} unreachable: {type(exc).__name__}") from exc
        except ValueError as exc:
            raise ProviderProtocolError(f"{studio} answered something that is not JSON") from exc
        if not isinstance(data, dict):
            raise ProviderProtocolError(f"{studio} answered something that is not a JSON object")
        if status >= 500:
            raise ProviderUnavailable(f"{studio} answered {status}")
        if status >= 400:
            raise ProviderRejected(f"{studio} refused: {status} {str(data.get('error'))[:40]}")
        return data

    async def healthy(self, path: str) -> bool:
        try:
            await self.request("GET", path)
        except ProviderError:
            return False
        return True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
