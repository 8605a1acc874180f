"""TLS client certificates bound to an operator (AdminService.BindClientCertificate, hub.auth.certificates), on
SQLite and MariaDB, with certificates the tests make (tests/certs.py): once an operator has a bound
certificate, its tokens, signatures and IssueToken work only over mutual TLS with that certificate; another
certificate of the same CA, a TLS connection without one, and plaintext are PERMISSION_DENIED /
CLIENT_CERTIFICATE_NOT_BOUND, logged, nothing changed. Operators without a binding are not affected, the
per-operator maximum holds, and unbinding restores the old behaviour."""

import hashlib
import pathlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import grpc
import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from casinohub.v1 import (
    admin_service_pb2 as apb,
    admin_service_pb2_grpc,
    auth_service_pb2 as tpb,
    auth_service_pb2_grpc,
    game_service_pb2 as gpb,
    player_service_pb2 as ppb,
)
from hub.auth.certificates import MAX_PER_OPERATOR
from tests.certs import Authority, Issued
from tests.errors import reason_of
from tests.fakes import FakeStudio
from tests.support import Client, bearer, signed, start_hub

ADMIN_TOKEN = "admin-" + "c" * 40
ADMIN = bearer(ADMIN_TOKEN)
NOT_BOUND = (grpc.StatusCode.PERMISSION_DENIED, "CLIENT_CERTIFICATE_NOT_BOUND")
LIST_GAMES = "/casinohub.v1.GameService/ListGames"


@dataclass
class Tenant:
    operator_id: str
    key_id: str
    secret: str
    private_key: Ed25519PrivateKey
    token: str


def fingerprint(issued: Issued) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(issued.cert_pem).public_bytes(
        serialization.Encoding.DER)).hexdigest()


def tls_channel(port: int, ca: Authority, client: Issued | None = None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem, private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None)
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=[("grpc.use_local_subchannel_pool", 1)])


async def new_tenant(channel: grpc.aio.Channel) -> Tenant:
    admin = admin_service_pb2_grpc.AdminServiceStub(channel)
    operator_id = f"op-{uuid.uuid4().hex[:10]}"
    await admin.CreateOperator(apb.CreateOperatorRequest(operator_id=operator_id), metadata=ADMIN)
    created = await admin.CreateApiKey(apb.CreateApiKeyRequest(operator_id=operator_id, generate_signing_key=True),
                                       metadata=ADMIN)
    private = serialization.load_pem_private_key(created.private_key_pem.encode(), None)
    assert isinstance(private, Ed25519PrivateKey)
    token = (await auth_service_pb2_grpc.AuthServiceStub(channel).IssueToken(
        tpb.IssueTokenRequest(key_id=created.api_key.key_id, secret=created.secret))).access_token
    return Tenant(operator_id, created.api_key.key_id, created.secret, private, token)


async def outcome(call: object) -> tuple[grpc.StatusCode, str]:
    """OK, or the refusal's code and ErrorInfo reason."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return reason_of(err)
    return grpc.StatusCode.OK, ""


async def every_way_in(channel: grpc.aio.Channel, tenant: Tenant) -> dict[str, tuple[grpc.StatusCode, str]]:
    """The tenant's token, a signed request, IssueToken and a Play stream over this channel."""
    games = gpb.ListGamesRequest(currency="USD")
    list_games = channel.unary_unary(LIST_GAMES, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    play = gpb.DESCRIPTOR.services_by_name["GameService"].methods_by_name["Play"]
    stream = channel.stream_stream(f"/{play.containing_service.full_name}/Play",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)

    async def play_once() -> None:
        call = stream(iter([gpb.PlayRequest(open=gpb.OpenAction(game_session_id="gs", session_token="t"))
                            .SerializeToString()]), metadata=bearer(tenant.token), timeout=10)
        async for _ in call:
            pass

    results = {
        "token": await outcome(list_games(games.SerializeToString(), metadata=bearer(tenant.token), timeout=10)),
        "signature": await outcome(list_games(games.SerializeToString(), timeout=10, metadata=signed(
            LIST_GAMES, games.SerializeToString(), tenant.key_id, tenant.private_key))),
        "issue token": await outcome(auth_service_pb2_grpc.AuthServiceStub(channel).IssueToken(
            tpb.IssueTokenRequest(key_id=tenant.key_id, secret=tenant.secret), timeout=10)),
        "play stream": await outcome(play_once()),
    }
    # A Play stream that got in fails on its made-up player session token: that is past authentication.
    if results["play stream"] == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_SESSION"):
        results["play stream"] = (grpc.StatusCode.OK, "")
    return results


ADMITTED = {way: (grpc.StatusCode.OK, "") for way in ("token", "signature", "issue token", "play stream")}
REFUSED = {way: NOT_BOUND for way in ADMITTED}


@pytest.fixture
def ca(tmp_path: pathlib.Path) -> Authority:
    return Authority(tmp_path, "hub")


@pytest.fixture
async def mtls_hub(database_url: str, studio: FakeStudio, ca: Authority) -> AsyncIterator[Client]:
    server = ca.server()
    hub = await start_hub(database_url, {"fake": studio}, admin_token=ADMIN_TOKEN, tls_cert_file=str(server.cert),
                          tls_key_file=str(server.key), tls_client_ca_file=str(ca.cert))
    await hub.channel.close()
    hub.channel = tls_channel(hub.port, ca, ca.client("admin"))
    hub.server.authenticator.cache_ttl_s = 0  # bindings reach tokens at once, not within 5 s
    yield hub
    await hub.channel.close()
    await hub.server.stop(grace=1)


async def test_a_bound_operator_is_admitted_only_with_its_certificate(mtls_hub: Client, ca: Authority) -> None:
    admin = admin_service_pb2_grpc.AdminServiceStub(mtls_hub.channel)
    a, b = await new_tenant(mtls_hub.channel), await new_tenant(mtls_hub.channel)
    good, other = ca.client("good"), ca.client("other")  # the same CA: both pass the TLS handshake
    async with tls_channel(mtls_hub.port, ca, good) as with_good, \
            tls_channel(mtls_hub.port, ca, other) as with_other:
        assert await every_way_in(with_other, a) == ADMITTED  # nothing bound: any certificate of the CA

        bound = (await admin.BindClientCertificate(apb.BindClientCertificateRequest(
            operator_id=a.operator_id, certificate_pem=good.cert_pem.decode()), metadata=ADMIN)).certificate
        assert (bound.operator_id, bound.sha256_fingerprint) == (a.operator_id, fingerprint(good))
        assert bound.subject == "CN=good of hub" and bound.created_at.seconds > 0

        assert await every_way_in(with_good, a) == ADMITTED
        with structlog.testing.capture_logs() as logs:
            assert await every_way_in(with_other, a) == REFUSED
        refusals = [e for e in logs if e["event"] == "auth.refused"]
        assert [e["reason"] for e in refusals] == ["CLIENT_CERTIFICATE_NOT_BOUND"] * 4
        assert {e["rpc"] for e in refusals} == {"ListGames", "IssueToken", "Play"}
        assert await every_way_in(with_other, b) == ADMITTED  # B has no binding: unaffected

        listed = await admin.ListClientCertificates(apb.ListClientCertificatesRequest(operator_id=a.operator_id),
                                                    metadata=ADMIN)
        assert [c.sha256_fingerprint for c in listed.certificates] == [fingerprint(good)]

        await admin.UnbindClientCertificate(apb.UnbindClientCertificateRequest(
            operator_id=a.operator_id, sha256_fingerprint=fingerprint(good)), metadata=ADMIN)
        assert await every_way_in(with_other, a) == ADMITTED  # the last binding gone: as before
        assert reason_of(await _refused(admin.UnbindClientCertificate(apb.UnbindClientCertificateRequest(
            operator_id=a.operator_id, sha256_fingerprint=fingerprint(good)), metadata=ADMIN))) == (
            grpc.StatusCode.NOT_FOUND, "CLIENT_CERTIFICATE_NOT_FOUND")


async def test_a_bound_operator_is_refused_over_plaintext_and_tls_without_a_certificate(
        database_url: str, studio: FakeStudio, ca: Authority) -> None:
    """A hub serving plaintext, and one serving TLS without asking for client certificates: a bound operator
    presents none, so every way in is refused; an operator without a binding goes on as before."""
    server = ca.server()
    plaintext = await start_hub(database_url, {"fake": studio}, admin_token=ADMIN_TOKEN)
    tls = await start_hub(database_url, {"fake": studio}, admin_token=ADMIN_TOKEN, tls_cert_file=str(server.cert),
                          tls_key_file=str(server.key))
    try:
        await tls.channel.close()
        tls.channel = tls_channel(tls.port, ca)
        for hub in (plaintext, tls):
            hub.server.authenticator.cache_ttl_s = 0
        a, b = await new_tenant(plaintext.channel), await new_tenant(plaintext.channel)
        admin = admin_service_pb2_grpc.AdminServiceStub(plaintext.channel)
        colons = ":".join(f"{byte:02X}" for byte in bytes.fromhex(fingerprint(ca.client("a"))))  # openssl's form
        bound = await admin.BindClientCertificate(apb.BindClientCertificateRequest(
            operator_id=a.operator_id, sha256_fingerprint=colons), metadata=ADMIN)
        assert bound.certificate.sha256_fingerprint == colons.replace(":", "").lower()
        assert bound.certificate.subject == ""
        for hub in (plaintext, tls):
            assert await every_way_in(hub.channel, a) == REFUSED
            assert await every_way_in(hub.channel, b) == ADMITTED
        # Nothing a refused call asked for happened: A's player was never registered.
        client = replace(plaintext, operator_id=a.operator_id)
        client.token = a.token
        assert await outcome(client.players.RegisterPlayer(
            ppb.RegisterPlayerRequest(username="zoe", password="correct-horse"), metadata=client.metadata)) == NOT_BOUND
        await admin.UnbindClientCertificate(apb.UnbindClientCertificateRequest(
            operator_id=a.operator_id, sha256_fingerprint=colons.lower()), metadata=ADMIN)
        await client.players.RegisterPlayer(ppb.RegisterPlayerRequest(username="zoe", password="correct-horse"),
                                            metadata=client.metadata)  # the username was free
    finally:
        for hub in (plaintext, tls):
            await hub.channel.close()
            await hub.server.stop(grace=1)


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value


async def test_binding_has_a_maximum_and_refuses_bad_input(database_url: str, studio: FakeStudio,
                                                            ca: Authority) -> None:
    hub = await start_hub(database_url, {"fake": studio}, admin_token=ADMIN_TOKEN)
    try:
        admin = admin_service_pb2_grpc.AdminServiceStub(hub.channel)
        a = await new_tenant(hub.channel)

        def bind(**fields: str) -> object:
            return admin.BindClientCertificate(apb.BindClientCertificateRequest(operator_id=a.operator_id, **fields),
                                               metadata=ADMIN)

        certs = [ca.client(f"c{i}") for i in range(MAX_PER_OPERATOR + 1)]
        for cert in certs[:MAX_PER_OPERATOR]:
            await bind(certificate_pem=cert.cert_pem.decode())
        again = await bind(sha256_fingerprint=fingerprint(certs[0]))  # already bound: answered, not counted
        assert again.certificate.subject == "CN=c0 of hub"  # type: ignore[attr-defined]
        over = await _refused(bind(certificate_pem=certs[-1].cert_pem.decode()))
        assert reason_of(over) == (grpc.StatusCode.FAILED_PRECONDITION, "CLIENT_CERTIFICATE_LIMIT_REACHED")
        invalid = (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
        for fields in ({}, {"certificate_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
                       {"certificate_pem": certs[0].key_pem.decode()}, {"sha256_fingerprint": "ab" * 31},
                       {"sha256_fingerprint": "zz" * 32},
                       {"certificate_pem": certs[0].cert_pem.decode(), "sha256_fingerprint": fingerprint(certs[0])}):
            assert reason_of(await _refused(bind(**fields))) == invalid, fields
        assert reason_of(await _refused(admin.UnbindClientCertificate(apb.UnbindClientCertificateRequest(
            operator_id=a.operator_id, sha256_fingerprint="nope"), metadata=ADMIN))) == invalid
        for call in (admin.BindClientCertificate(apb.BindClientCertificateRequest(
                         operator_id="op-none", sha256_fingerprint=fingerprint(certs[0])), metadata=ADMIN),
                     admin.ListClientCertificates(apb.ListClientCertificatesRequest(operator_id="op-none"),
                                                  metadata=ADMIN)):
            assert reason_of(await _refused(call)) == (grpc.StatusCode.NOT_FOUND, "OPERATOR_NOT_FOUND")
        listed = await admin.ListClientCertificates(apb.ListClientCertificatesRequest(operator_id=a.operator_id),
                                                    metadata=ADMIN)
        assert sorted(c.sha256_fingerprint for c in listed.certificates) == sorted(
            fingerprint(c) for c in certs[:MAX_PER_OPERATOR])
        # Operator ids compare byte for byte: another case is another (unknown) operator.
        assert reason_of(await _refused(admin.ListClientCertificates(apb.ListClientCertificatesRequest(
            operator_id=a.operator_id.upper()), metadata=ADMIN))) == (grpc.StatusCode.NOT_FOUND, "OPERATOR_NOT_FOUND")
        # Only the administrator binds: an operator's own token may not (A's own is refused before that: it
        # does not come with one of A's certificates).
        b = await new_tenant(hub.channel)
        own = await _refused(admin.BindClientCertificate(apb.BindClientCertificateRequest(
            operator_id=b.operator_id, sha256_fingerprint="00" * 32), metadata=bearer(b.token)))
        assert reason_of(own) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")
    finally:
        await hub.channel.close()
        await hub.server.stop(grace=1)
