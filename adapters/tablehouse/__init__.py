"""Adapter for the Tablehouse table-games studio (gRPC, casinohub.provider.v1); entry point "tablehouse"."""

from adapters.tablehouse.adapter import TablehouseAdapter

__all__ = ["TablehouseAdapter"]
