"""Reelhouse: a mock slots studio speaking signed HTTP/JSON. See README.md for the protocol."""
