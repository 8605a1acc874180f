"""Livehouse: a live-dealer studio (push style) that runs red-or-black rounds on its own clock and calls the
hub's ProviderWalletService for every bet and result."""
