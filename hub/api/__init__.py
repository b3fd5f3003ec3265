"""HTTP handlers and the request/response helpers they share."""
