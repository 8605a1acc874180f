"""Provider adapters: one package per game studio behind the small protocol in adapters.base."""
