"""An aiohttp application served on one of the hub's side addresses (the inbound studio server, /metrics)."""

from aiohttp import web


async def serve(runner: web.AppRunner, listen: str, what: str) -> int:
    """Set the runner up and bind it to listen ("host:port"; port 0 picks a free one); returns the bound
    port. A port in use, or an address not of this host, is an OSError naming `what`."""
    await runner.setup()
    host, _, port = listen.rpartition(":")
    try:
        await web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port)).start()
    except OSError:
        await runner.cleanup()
        raise OSError(f"could not bind {what} to {listen}: in use, or not an address here") from None
    bound: int = runner.addresses[0][1]
    return bound
