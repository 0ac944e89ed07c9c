//! Distinguished names (RFC 4514): parsing into RDNs and a normalised form for comparison.
