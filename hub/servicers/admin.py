"""AdminService and AuthService: the administrator's operators and keys, and the token exchange."""

import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict, fields
from typing import Any

import grpc
import structlog

from casinohub.v1 import (
    admin_service_pb2 as pb,
    admin_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
)
from hub.auth import certificates
from hub.auth.admin import ApiKeyRecord, OperatorAdmin, OperatorRecord, StudioKeyRecord
from hub.auth.certificates import ClientCertificate
from hub.auth.credentials import Authenticator
from hub.catalog import Catalog, OperatorConfiguration
from hub.errors import DomainError
from hub.operator_limits import InForce, Limits, OperatorLimitSettings, check
from hub.servicers import mapping
from hub.servicers.authentication import refused
from hub.servicers.calls import abort_unexpected, answered, bind_call, refuse

log = structlog.get_logger("hub.rpc")
ENVIRONMENTS = {"sandbox": pb.ENVIRONMENT_SANDBOX, "production": pb.ENVIRONMENT_PRODUCTION}
ENVIRONMENT_NAMES = {v: k for k, v in ENVIRONMENTS.items()}


def _operator(o: OperatorRecord) -> pb.Operator:
    return pb.Operator(operator_id=o.operator_id, name=o.name, environment=ENVIRONMENTS[o.environment],
                       ip_allowlist=o.ip_allowlist, created_at=mapping.timestamp(o.created_at))


def _key(k: ApiKeyRecord) -> pb.ApiKey:
    key = pb.ApiKey(key_id=k.key_id, operator_id=k.operator_id, scopes=k.scopes,
                    environment=ENVIRONMENTS[k.environment], has_secret=k.has_secret, public_key=k.public_key,
                    created_at=mapping.timestamp(k.created_at), revoked_at=mapping.timestamp(k.revoked_at))
    return key


def _studio_key(k: StudioKeyRecord) -> pb.StudioKey:
    return pb.StudioKey(key_id=k.key_id, studio_id=k.studio_id, public_key=k.public_key,
                        created_at=mapping.timestamp(k.created_at), revoked_at=mapping.timestamp(k.revoked_at),
                        ip_allowlist=k.ip_allowlist)


def _certificate(c: ClientCertificate) -> pb.ClientCertificate:
    return pb.ClientCertificate(operator_id=c.operator_id, sha256_fingerprint=c.fingerprint, subject=c.subject,
                                created_at=mapping.timestamp(c.created_at))


def _environment(value: pb.Environment.ValueType, default: str = "") -> str:
    return ENVIRONMENT_NAMES.get(value, default)  # "" is refused by the service as not an environment


Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]


def admin_call(handler: Handler) -> Handler:
    """Logs bound and errors mapped, as calls.unary does; the administrator acts for no operator."""

    @functools.wraps(handler)
    async def call(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        bind_call(context, handler.__name__)
        return await answered(context, handler.__name__, handler(self, request, context))

    return call


def _catalog_settings(c: OperatorConfiguration) -> pb.CatalogSettings:
    return pb.CatalogSettings(
        operator_id=c.operator_id,
        studios=[pb.StudioSettings(studio=s.studio, enabled=s.enabled, healthy=s.healthy,
                                   blocked_countries=s.blocked_countries) for s in c.studios],
        games=[pb.GameSettings(game_id=g.game_id, blocked_countries=g.blocked_countries, rtp_variant=g.rtp_variant,
                               rtp_variants=[pb.RtpVariant(variant=v.variant_id, rtp_basis_points=v.rtp_basis_points)
                                             for v in g.rtp_variants]) for g in c.games])


def _limits_out(limits: Limits | InForce) -> pb.OperatorLimits:
    """Only the figures that are set (not None) are present."""
    out = pb.OperatorLimits()
    for f in fields(limits):
        value = getattr(limits, f.name)
        if value is not None:
            setattr(out, f.name, value)
    return out


def _limits_in(message: pb.OperatorLimits) -> Limits:
    """A figure absent from the message (proto3 optional) is None: not set."""
    m = message
    return Limits(m.rate_per_s if m.HasField("rate_per_s") else None, m.burst if m.HasField("burst") else None,
                  m.max_play_streams if m.HasField("max_play_streams") else None,
                  m.session_cap if m.HasField("session_cap") else None)


class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    def __init__(self, admin: OperatorAdmin, catalog: Catalog, limits: OperatorLimitSettings):
        self.admin = admin
        self.catalog = catalog
        self.limits = limits

    async def _configuration(self, operator_id: str) -> pb.CatalogSettings:
        return _catalog_settings(await self.catalog.configuration(operator_id))

    @admin_call
    async def CreateOperator(self, request: pb.CreateOperatorRequest,
                             context: grpc.aio.ServicerContext) -> pb.CreateOperatorResponse:
        created = await self.admin.create_operator(request.operator_id, request.name,
                                                   _environment(request.environment, "sandbox"))
        return pb.CreateOperatorResponse(operator=_operator(created))

    @admin_call
    async def GetOperator(self, request: pb.GetOperatorRequest,
                          context: grpc.aio.ServicerContext) -> pb.GetOperatorResponse:
        return pb.GetOperatorResponse(operator=_operator(await self.admin.get_operator(request.operator_id)))

    @admin_call
    async def ListOperators(self, request: pb.ListOperatorsRequest,
                            context: grpc.aio.ServicerContext) -> pb.ListOperatorsResponse:
        page, next_token = await self.admin.list_operators(request.page_size, request.page_token)
        return pb.ListOperatorsResponse(operators=[_operator(o) for o in page], next_page_token=next_token)

    @admin_call
    async def SetOperatorEnvironment(self, request: pb.SetOperatorEnvironmentRequest,
                                     context: grpc.aio.ServicerContext) -> pb.SetOperatorEnvironmentResponse:
        updated = await self.admin.set_environment(request.operator_id, _environment(request.environment))
        return pb.SetOperatorEnvironmentResponse(operator=_operator(updated))

    @admin_call
    async def SetIpAllowlist(self, request: pb.SetIpAllowlistRequest,
                             context: grpc.aio.ServicerContext) -> pb.SetIpAllowlistResponse:
        updated = await self.admin.set_ip_allowlist(request.operator_id, list(request.cidrs))
        return pb.SetIpAllowlistResponse(operator=_operator(updated))

    @admin_call
    async def CreateApiKey(self, request: pb.CreateApiKeyRequest,
                           context: grpc.aio.ServicerContext) -> pb.CreateApiKeyResponse:
        new = await self.admin.create_api_key(request.operator_id, list(request.scopes), request.public_key,
                                              request.generate_signing_key)
        log.info("admin.api_key_created", key_id=new.key.key_id, operator=new.key.operator_id)
        return pb.CreateApiKeyResponse(api_key=_key(new.key), secret=new.secret, private_key_pem=new.private_key_pem)

    @admin_call
    async def ListApiKeys(self, request: pb.ListApiKeysRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListApiKeysResponse:
        return pb.ListApiKeysResponse(api_keys=[_key(k) for k in await self.admin.list_api_keys(request.operator_id)])

    @admin_call
    async def RevokeApiKey(self, request: pb.RevokeApiKeyRequest,
                           context: grpc.aio.ServicerContext) -> pb.RevokeApiKeyResponse:
        revoked = await self.admin.revoke_api_key(request.key_id)
        log.info("admin.api_key_revoked", key_id=revoked.key_id, operator=revoked.operator_id)
        return pb.RevokeApiKeyResponse(api_key=_key(revoked))

    @admin_call
    async def GetCatalogSettings(self, request: pb.GetCatalogSettingsRequest,
                                 context: grpc.aio.ServicerContext) -> pb.GetCatalogSettingsResponse:
        await self.admin.get_operator(request.operator_id)
        return pb.GetCatalogSettingsResponse(settings=await self._configuration(request.operator_id))

    @admin_call
    async def SetStudioEnabled(self, request: pb.SetStudioEnabledRequest,
                               context: grpc.aio.ServicerContext) -> pb.SetStudioEnabledResponse:
        await self.admin.get_operator(request.operator_id)
        await self.catalog.set_studio_enabled(request.operator_id, request.studio, request.enabled)
        log.info("admin.studio_enabled", operator=request.operator_id, studio=request.studio, enabled=request.enabled)
        return pb.SetStudioEnabledResponse(settings=await self._configuration(request.operator_id))

    @admin_call
    async def SetBlockedCountries(self, request: pb.SetBlockedCountriesRequest,
                                  context: grpc.aio.ServicerContext) -> pb.SetBlockedCountriesResponse:
        await self.admin.get_operator(request.operator_id)
        await self.catalog.set_blocked_countries(request.operator_id, request.studio, request.game_id,
                                                 request.countries)
        log.info("admin.countries_blocked", operator=request.operator_id, target=request.studio or request.game_id,
                 countries=len(request.countries))
        return pb.SetBlockedCountriesResponse(settings=await self._configuration(request.operator_id))

    @admin_call
    async def SetRtpVariant(self, request: pb.SetRtpVariantRequest,
                            context: grpc.aio.ServicerContext) -> pb.SetRtpVariantResponse:
        await self.admin.get_operator(request.operator_id)
        await self.catalog.set_rtp_variant(request.operator_id, request.game_id, request.variant)
        log.info("admin.rtp_variant", operator=request.operator_id, game=request.game_id, variant=request.variant)
        return pb.SetRtpVariantResponse(settings=await self._configuration(request.operator_id))

    @admin_call
    async def CreateStudioKey(self, request: pb.CreateStudioKeyRequest,
                              context: grpc.aio.ServicerContext) -> pb.CreateStudioKeyResponse:
        new = await self.admin.create_studio_key(request.studio_id, request.public_key, request.generate_signing_key)
        log.info("admin.studio_key_created", key_id=new.key.key_id, studio=new.key.studio_id)
        return pb.CreateStudioKeyResponse(studio_key=_studio_key(new.key), private_key_pem=new.private_key_pem)

    @admin_call
    async def ListStudioKeys(self, request: pb.ListStudioKeysRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListStudioKeysResponse:
        return pb.ListStudioKeysResponse(
            studio_keys=[_studio_key(k) for k in await self.admin.list_studio_keys(request.studio_id)])

    @admin_call
    async def RevokeStudioKey(self, request: pb.RevokeStudioKeyRequest,
                              context: grpc.aio.ServicerContext) -> pb.RevokeStudioKeyResponse:
        revoked = await self.admin.revoke_studio_key(request.key_id)
        log.info("admin.studio_key_revoked", key_id=revoked.key_id, studio=revoked.studio_id)
        return pb.RevokeStudioKeyResponse(studio_key=_studio_key(revoked))

    @admin_call
    async def BindClientCertificate(self, request: pb.BindClientCertificateRequest,
                                    context: grpc.aio.ServicerContext) -> pb.BindClientCertificateResponse:
        bound = await self.admin.bind_client_certificate(request.operator_id, request.certificate_pem,
                                                         request.sha256_fingerprint)
        log.info("admin.client_certificate_bound", operator=bound.operator_id, fingerprint=bound.fingerprint[:16])
        return pb.BindClientCertificateResponse(certificate=_certificate(bound))

    @admin_call
    async def UnbindClientCertificate(self, request: pb.UnbindClientCertificateRequest,
                                      context: grpc.aio.ServicerContext) -> pb.UnbindClientCertificateResponse:
        unbound = await self.admin.unbind_client_certificate(request.operator_id, request.sha256_fingerprint)
        log.info("admin.client_certificate_unbound", operator=unbound.operator_id,
                 fingerprint=unbound.fingerprint[:16])
        return pb.UnbindClientCertificateResponse(certificate=_certificate(unbound))

    @admin_call
    async def ListClientCertificates(self, request: pb.ListClientCertificatesRequest,
                                     context: grpc.aio.ServicerContext) -> pb.ListClientCertificatesResponse:
        return pb.ListClientCertificatesResponse(
            certificates=[_certificate(c) for c in await self.admin.list_client_certificates(request.operator_id)])

    @admin_call
    async def SetStudioKeyIpAllowlist(self, request: pb.SetStudioKeyIpAllowlistRequest,
                                      context: grpc.aio.ServicerContext) -> pb.SetStudioKeyIpAllowlistResponse:
        updated = await self.admin.set_studio_key_ip_allowlist(request.key_id, list(request.cidrs))
        log.info("admin.studio_key_allowlist", key_id=updated.key_id, cidrs=len(updated.ip_allowlist))
        return pb.SetStudioKeyIpAllowlistResponse(studio_key=_studio_key(updated))


    @admin_call
    async def GetOperatorLimits(self, request: pb.GetOperatorLimitsRequest,
                                context: grpc.aio.ServicerContext) -> pb.GetOperatorLimitsResponse:
        await self.admin.get_operator(request.operator_id)
        limits = await self.limits.get(request.operator_id)
        return pb.GetOperatorLimitsResponse(operator_id=request.operator_id, limits=_limits_out(limits),
                                            effective=_limits_out(self.limits.effective(request.operator_id, limits)))

    @admin_call
    async def SetOperatorLimits(self, request: pb.SetOperatorLimitsRequest,
                                context: grpc.aio.ServicerContext) -> pb.SetOperatorLimitsResponse:
        wanted = check(_limits_in(request.limits))  # a bad figure is refused before the operator is looked up
        await self.admin.get_operator(request.operator_id)
        limits = await self.limits.set(request.operator_id, wanted)
        log.info("admin.operator_limits", operator=request.operator_id,
                 **{f"{k}_set": v for k, v in asdict(limits).items() if v is not None})
        return pb.SetOperatorLimitsResponse(operator_id=request.operator_id, limits=_limits_out(limits),
                                            effective=_limits_out(self.limits.effective(request.operator_id, limits)))


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    def __init__(self, authenticator: Authenticator):
        self.authenticator = authenticator

    async def IssueToken(self, request: auth_service_pb2.IssueTokenRequest,
                         context: grpc.aio.ServicerContext) -> auth_service_pb2.IssueTokenResponse:
        bind_call(context, "IssueToken")
        peer = context.peer() or ""
        try:
            issued = await self.authenticator.issue_token(request.key_id, request.secret, list(request.scopes), peer,
                                                          certificates.peer_fingerprint(context.auth_context()))
        except DomainError as err:
            refused(err, "IssueToken", {"x-casinohub-key-id": request.key_id}, peer)
            await refuse(context, "IssueToken", err)
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never leaked
            await abort_unexpected(context, "IssueToken", exc)
        log.info("rpc.ok", key_id=request.key_id[:12])
        return auth_service_pb2.IssueTokenResponse(access_token=issued.token, token_type="Bearer",
                                                   expires_at=mapping.timestamp(issued.expires_at),
                                                   scopes=issued.scopes)

