//! Source of time abstraction.
//!
//! By default, `std::time::Instant::now()` is used. However, when the
//! `test-util` feature flag is enabled, the values returned for `now()` are
//! configurable.

use crate::time::Instant;

#[derive(Default, Debug, Clone)]
pub(crate) struct Clock {}

pub(crate) fn now() -> Instant {
    Instant::from_std(std::time::Instant::now())
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {}
    }

    pub(crate) fn now(&self) -> Instant {
        now()
    }
}

thread_local! {
    static TURN: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// Reads the clock for the turn of the event loop that starts: the runtime calls it once per turn,
/// before it runs the tasks that the turn's I/O woke.
pub(crate) fn start_turn() {
    TURN.with(|t| t.set(Some(std::time::Instant::now())));
}

/// Forgets the last turn's reading (the runtime has stopped).
pub(crate) fn end_turns() {
    TURN.with(|t| t.set(None));
}

/// The time read at the start of the current turn of this thread's event loop: the moment the I/O
/// that woke the running task was collected, at most one turn old. One clock reading serves every
/// task of a turn. Outside a runtime, the clock is read now.
pub fn turn_now() -> std::time::Instant {
    TURN.with(|t| t.get()).unwrap_or_else(std::time::Instant::now)
}
