//! Generated prost types of `proto/wagate.proto` (package `wagate.v1`): the
//! records wagate stores in its own shape and the events it emits.
//!
//! Generated at build time by `build.rs`; edit the `.proto`, never this output.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/wagate.v1.rs"));
