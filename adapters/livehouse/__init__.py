from adapters.livehouse.adapter import LivehouseAdapter

__all__ = ["LivehouseAdapter"]
