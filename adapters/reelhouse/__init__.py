"""Adapter for the Reelhouse slots studio; registered under the entry point name "reelhouse"."""

from adapters.reelhouse.adapter import ReelhouseAdapter, SeedReveal

__all__ = ["ReelhouseAdapter", "SeedReveal"]
