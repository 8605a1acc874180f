"""The hub's tables (SQLAlchemy Core). Every operator-owned row carries operator_id; every query filters by it."""

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.schema import SchemaItem

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Microsecond timestamps on MariaDB too (its DATETIME drops fractions by default). Stored as UTC.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# Stored responses and event payloads can exceed MariaDB's 64 KiB BLOB.
Blob = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")

ID = 36  # uuid4 text

# Identifiers (keys, ids, usernames) compare byte for byte. MariaDB's default collations do not:
# *_general_ci folds case, and every PAD SPACE collation, utf8mb4_bin included, ignores trailing
# spaces, so 'Key', 'key' and 'key ' would be one idempotency key. SQLite compares bytes already.
# Migration 0007 converts existing tables and makes this the database's default too.
CHARSET, COLLATION = "utf8mb4", "utf8mb4_nopad_bin"
_TEXT: dict[str, Any] = {f"{dialect}_{option}": value for dialect in ("mysql", "mariadb")
         for option, value in (("charset", CHARSET), ("collate", COLLATION))}


def table(name: str, *items: SchemaItem) -> Table:
    """A hub table: in the hub's metadata, its text columns compared byte for byte on MariaDB."""
    return Table(name, metadata, *items, **_TEXT)


operators = table(
    "operators",
    Column("operator_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("environment", String(16), nullable=False, server_default="sandbox"),  # sandbox | production
    # Space-separated CIDRs the operator's calls may come from; empty: any address (hub/auth).
    Column("ip_allowlist", String(4000), nullable=False, server_default=""),
)

players = table(
    "players",
    Column("player_id", String(ID), primary_key=True),
    Column("operator_id", String(64), nullable=False),
    Column("username", String(64), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # active | blocked
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("operator_id", "username"),
)

player_sessions = table(
    "player_sessions",
    # One login: its session and refresh tokens (player_session_tokens) form its family (hub.players).
    Column("session_id", String(ID), primary_key=True),
    Column("operator_id", String(64), nullable=False),
    Column("player_id", String(ID), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("last_used_at", Timestamp, nullable=False),  # idle timeout
    Column("expires_at", Timestamp, nullable=False),  # the login's hard end; refresh tokens die with it
    Column("ended_at", Timestamp),
    Column("end_reason", String(32)),  # LOGOUT | SESSION_CAP | IDLE | REFRESH_TOKEN_REUSED | SESSION_TIME_LIMIT
    Index(None, "operator_id", "player_id", "ended_at", "created_at"),  # live sessions: the cap, ListSessions
)

player_session_tokens = table(
    "player_session_tokens",
    # SHA-256 of each opaque token (random, 256 bits: a fast hash is enough); a database leak leaks no token.
    Column("token_hash", String(64), primary_key=True),
    Column("operator_id", String(64), nullable=False),
    Column("session_id", String(ID), nullable=False, index=True),
    Column("kind", String(8), nullable=False),  # session | refresh
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("rotated_at", Timestamp),  # replaced by RefreshSession: a refresh token presented again is reuse
)

self_exclusions = table(
    "self_exclusions",
    Column("operator_id", String(64), primary_key=True),
    Column("player_id", String(ID), primary_key=True),
    Column("started_at", Timestamp, nullable=False),
    Column("ends_at", Timestamp),  # NULL: indefinite
)

player_limits = table(
    "player_limits",
    # A player's responsible-gaming limits (hub.responsible): deposit and loss per period and currency,
    # session time ("" period and currency). amount 0: no limit. A raise waits in pending_* until pending_from.
    Column("operator_id", String(64), primary_key=True),
    Column("player_id", String(ID), primary_key=True),
    Column("kind", String(16), primary_key=True),  # deposit | loss | session_time
    Column("period", String(8), primary_key=True),  # day | week | month | ""
    Column("currency", String(8), primary_key=True),
    Column("amount", BigInteger, nullable=False),  # minor units, or seconds for session_time
    Column("pending_amount", BigInteger),
    Column("pending_from", Timestamp),
    Column("updated_at", Timestamp, nullable=False),
)

accounts = table(
    "accounts",
    Column("account_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("operator_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # player_cash | player_hold | house | external
    Column("owner", String(ID), nullable=False),  # player id, house shard number, or "" for external
    Column("currency", String(8), nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("last_entry_hash", String(64), nullable=False),  # head of its entries' chain (hub.ledger.chain)
    UniqueConstraint("operator_id", "kind", "owner", "currency"),
)

ledger_transactions = table(
    "ledger_transactions",
    # Ledger order. Numbered as the row is inserted, which post() does while it holds the player's
    # wallet: one player's transactions are numbered in the order they were applied, so their
    # balance_after values chain in seq order (created_at is taken before the locks: it does not).
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("transaction_id", String(ID), nullable=False, unique=True),
    Column("operator_id", String(64), nullable=False),
    # deposit | withdrawal | withdrawal_paid | withdrawal_released | bet | win | rollback
    Column("kind", String(24), nullable=False),
    Column("player_id", String(ID), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),  # signed change to the player's cash
    Column("balance_after", BigInteger, nullable=False),
    Column("bonus_amount", BigInteger, nullable=False, server_default="0"),  # signed change to the bonus balance
    Column("bonus_balance_after", BigInteger, nullable=False, server_default="0"),
    Column("round_id", String(ID)),
    # Every money movement is keyed; the unique constraint makes a second effect impossible.
    Column("idempotency_key", String(160), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("operator_id", "idempotency_key"),
    Index(None, "operator_id", "player_id", "seq"),  # a player's history
    Index(None, "operator_id", "seq"),  # the operator's history
    Index(None, "operator_id", "player_id", "created_at"),  # time windows, daily deposit limits
    Index(None, "operator_id", "created_at"),
    Index(None, "operator_id", "round_id"),  # a round's transactions, read at every settlement
)

postings = table(
    "postings",
    Column("posting_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("transaction_id", String(ID), nullable=False, index=True),
    Column("operator_id", String(64), nullable=False),
    Column("account_id", BigInteger, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
    Column("entry_hash", String(64), nullable=False),  # chains to the account's previous entry
    Index(None, "account_id", "posting_id"),
)

idempotency_keys = table(
    "idempotency_keys",
    Column("operator_id", String(64), primary_key=True),
    Column("idempotency_key", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("response", Blob),  # the answer stored for a replay (hub.records); NULL: claimed by an older hub
    Column("created_at", Timestamp, nullable=False),
)

game_sessions = table(
    "game_sessions",
    Column("game_session_id", String(ID), primary_key=True),
    Column("operator_id", String(64), nullable=False),
    Column("player_id", String(ID), nullable=False),
    Column("game_id", String(128), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("client_seed", String(128), nullable=False),
    Column("server_seed_hash", String(64), nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    # The RTP variant the studio plays this session at ("": the studio's default), fixed at launch.
    Column("rtp_variant", String(32), nullable=False, server_default=""),
)

rounds = table(
    "rounds",
    # Keyed per operator: push-style providers name their own rounds, and those names may collide.
    Column("operator_id", String(64), primary_key=True),
    Column("round_id", String(ID), primary_key=True),
    Column("game_session_id", String(ID)),  # NULL for rounds a push-style provider opens
    Column("player_id", String(ID), nullable=False),
    Column("game_id", String(128), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("status", String(16), nullable=False),  # OPEN | SETTLED | ROLLED_BACK | VOIDED
    Column("bet_amount", BigInteger, nullable=False),  # every bet placed, rolled-back ones included
    Column("win_amount", BigInteger, nullable=False),
    Column("provider_round_id", String(128)),
    Column("result", String(256)),
    Column("proof", Text),  # the provably-fair proof, as hub.records encodes it
    Column("opened_at", Timestamp, nullable=False),
    Column("closed_at", Timestamp),
    Index(None, "operator_id", "status", "opened_at"),
    Index(None, "round_id"),  # whose round an id is, when another operator names it (hub.operators)
)

withdrawals = table(
    "withdrawals",
    Column("operator_id", String(64), primary_key=True),
    Column("withdrawal_id", String(ID), primary_key=True),
    Column("player_id", String(ID), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # PENDING | APPROVED | REJECTED
    Column("hold_transaction_id", String(ID), nullable=False),
    Column("decision_transaction_id", String(ID)),  # the payout or the release
    Column("created_at", Timestamp, nullable=False),
    Column("decided_at", Timestamp),
    Index(None, "operator_id", "status", "created_at"),
    Index(None, "withdrawal_id"),  # whose withdrawal an id is (hub.operators)
)

bets = table(
    "bets",
    Column("operator_id", String(64), primary_key=True),
    Column("bet_id", String(128), primary_key=True),  # the bet's idempotency key
    Column("round_id", String(ID)),  # NULL for a tombstone
    Column("player_id", String(ID), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),
    # How the stake was paid: cash_amount + bonus_amount, or (free_round_id set) all by the operator.
    Column("cash_amount", BigInteger, nullable=False, server_default="0"),
    Column("bonus_amount", BigInteger, nullable=False, server_default="0"),
    Column("bonus_id", String(ID)),  # the wallet's active bonus when the bet was placed: it wagers toward it
    Column("free_round_id", String(ID)),  # the free-round grant that paid the stake
    # ACTIVE | ROLLED_BACK | TOMBSTONE (a rollback arrived before its bet: the id is refused from then on)
    Column("status", String(16), nullable=False),
    Column("transaction_id", String(ID)),  # the debit; NULL for a tombstone
    Column("created_at", Timestamp, nullable=False),
    Index(None, "operator_id", "round_id", "status"),
)

play_events = table(
    "play_events",
    Column("game_session_id", String(ID), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("operator_id", String(64), nullable=False),
    Column("round_id", String(ID)),
    Column("payload", Blob, nullable=False),  # one Play event, as hub.records encodes it
    Column("created_at", Timestamp, nullable=False),
    Index(None, "round_id"),
)

bonuses = table(
    "bonuses",
    Column("operator_id", String(64), primary_key=True),
    Column("bonus_id", String(ID), primary_key=True),
    Column("player_id", String(ID), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),  # granted
    Column("wagering_required", BigInteger, nullable=False),
    Column("wagered", BigInteger, nullable=False),  # stakes of settled rounds so far
    Column("status", String(16), nullable=False),  # ACTIVE | CONVERTED | EXPIRED | FORFEITED
    Column("grant_transaction_id", String(ID), nullable=False),
    Column("closing_transaction_id", String(ID)),
    Column("expires_at", Timestamp, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("closed_at", Timestamp),
    Index(None, "operator_id", "player_id", "currency", "status"),
    Index(None, "status", "expires_at"),  # the expiry sweep, across operators
    Index(None, "bonus_id"),  # whose bonus an id is (hub.operators)
)

free_round_grants = table(
    "free_round_grants",
    Column("operator_id", String(64), primary_key=True),
    Column("grant_id", String(ID), primary_key=True),
    Column("player_id", String(ID), nullable=False),
    Column("game_id", String(128), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("bet_amount", BigInteger, nullable=False),
    Column("rounds", Integer, nullable=False),
    Column("rounds_left", Integer, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "operator_id", "player_id", "game_id", "currency"),
)

hub_keys = table(
    "hub_keys",
    # Hub-wide, not an operator's: secrets generated on first start and shared by every hub process.
    Column("name", String(64), primary_key=True),
    Column("secret", String(128), nullable=False),  # hex
    Column("created_at", Timestamp, nullable=False),
)

api_keys = table(
    "api_keys",
    # An operator's credentials: an argon2 hash of the secret (AuthService.IssueToken) and/or the public half
    # of an Ed25519 signing key (request signatures). Neither half can be used to call the hub.
    Column("key_id", String(32), primary_key=True),
    Column("operator_id", String(64), nullable=False, index=True),
    Column("secret_hash", String(200)),
    Column("public_key", String(64)),  # base64 of the 32 raw bytes
    Column("scopes", String(400), nullable=False),  # space-separated
    Column("environment", String(16), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp),
)

studio_keys = table(
    "studio_keys",
    # A studio's keys for ProviderWalletService: the public half of an Ed25519 pair. A studio is no tenant:
    # its key reaches the game sessions of its own games, whichever operator launched them.
    Column("key_id", String(32), primary_key=True),
    Column("studio_id", String(32), nullable=False, index=True),
    Column("public_key", String(64), nullable=False),  # base64 of the 32 raw bytes
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp),
    # Space-separated CIDRs the studio's calls with this key may come from; empty: any address (hub/auth).
    Column("ip_allowlist", String(4000), nullable=False, server_default=""),
)

client_certificates = table(
    "client_certificates",
    # TLS client certificates bound to an operator (hub.auth.certificates): with one row or more, the
    # operator's calls must arrive over mutual TLS with one of them. SHA-256 of the DER bytes, lower-case hex.
    Column("operator_id", String(64), primary_key=True),
    Column("fingerprint", String(64), primary_key=True),
    Column("subject", String(256), nullable=False),  # "" when bound by fingerprint
    Column("created_at", Timestamp, nullable=False),
)

api_key_scope_grants = table(
    "api_key_scope_grants",
    # What migration 0016 granted (player:read to keys made before that scope existed) and each key's
    # scopes before it, so that its downgrade takes away exactly what it gave. The hub never reads it.
    Column("key_id", String(32), primary_key=True),
    Column("scope", String(32), primary_key=True),
    Column("scopes_before", String(400), nullable=False),
)

auth_nonces = table(
    "auth_nonces",
    # Nonces of signed requests seen within the timestamp window: the primary key makes each one usable
    # once across every hub process. Rows past expires_at are swept.
    Column("key_id", String(32), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("operator_id", String(64), nullable=False),
    Column("expires_at", Timestamp, nullable=False, index=True),
)

# Per-operator catalog configuration (hub.catalog_settings). No row: the studio is enabled, nothing is
# blocked, each game runs at its studio's default variant.
operator_disabled_studios = table(
    "operator_disabled_studios",
    Column("operator_id", String(64), primary_key=True),
    Column("studio", String(64), primary_key=True),
    Column("disabled_at", Timestamp, nullable=False),
)

operator_country_blocks = table(
    "operator_country_blocks",
    # target: a studio name, or a hub game id ("<studio>:<game>"); studio names hold no colon.
    Column("operator_id", String(64), primary_key=True),
    Column("target", String(128), primary_key=True),
    Column("country", String(2), primary_key=True),
)

operator_rtp_variants = table(
    "operator_rtp_variants",
    Column("operator_id", String(64), primary_key=True),
    Column("game_id", String(128), primary_key=True),
    Column("variant", String(32), nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

operator_limits = table(
    "operator_limits",
    # An operator's abuse limits set through AdminService.SetOperatorLimits (hub.operator_limits). NULL: the
    # hub's configured default. No row: every default.
    Column("operator_id", String(64), primary_key=True),
    Column("rate_per_s", Double),
    Column("burst", Integer),
    Column("max_play_streams", Integer),
    Column("session_cap", Integer),
    Column("updated_at", Timestamp, nullable=False),
)
