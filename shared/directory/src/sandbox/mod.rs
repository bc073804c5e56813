//! An Entra-compatible Graph server for tests and the local runtime.
