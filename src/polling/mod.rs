//! Which targets are polled, and when: for now, what survives a restart (`persistence`).
//! The plan, the schedule, the poller and discovery join this module when the layers are
//! restructured.

pub(crate) mod persistence;
