"""The I/O side: listeners, the per-connection driver, auth_http, backend, relay, TLS."""
