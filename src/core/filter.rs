//! RFC 4515 search filters: parser and local evaluator over [`crate::core::entry::Entry`].
