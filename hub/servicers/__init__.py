"""Thin gRPC servicers: decode the request, call the domain, encode the answer."""
