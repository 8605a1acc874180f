"""Tablehouse: a mock table-games studio (European roulette, blackjack) serving casinohub's
ProviderGameService over gRPC. See README.md."""
