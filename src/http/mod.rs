//! HTTP surface.
