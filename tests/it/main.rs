//! The integration tests, one binary (one link, one run that spreads every test over the
//! cores): the daemon in-process on paused time where a test is about timing, the real binary
//! where it is about signals, exit codes, flags, TLS and connections. Helpers in `common`.

mod common;

mod binary;
mod dayone;
mod fleet;
mod hostile;
mod integrity;
mod mounts;
mod operator;
mod persistence;
mod polling;
mod resilience;
mod scheduling;
mod secure;
mod serving;
mod status;
