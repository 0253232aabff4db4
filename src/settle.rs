//! Settlement service and reconciler.
