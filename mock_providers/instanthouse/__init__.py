"""Instanthouse: an instant-games studio (crash, scratch) that pushes every money call to the hub in its own
HTTP wallet protocol (decimal amounts, status codes in the body, HMAC-signed requests)."""
