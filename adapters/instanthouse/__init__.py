from adapters.instanthouse.adapter import InstanthouseAdapter

__all__ = ["InstanthouseAdapter"]
