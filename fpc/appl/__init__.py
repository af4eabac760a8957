"""Application-layer parsers (HTTP, DNS, TLS, SSH, ...), one module per protocol."""
