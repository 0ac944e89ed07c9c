//! LDIF (RFC 2849) reader and writer.
