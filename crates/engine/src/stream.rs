//! What the engine's streams (logs `--follow`, events, stats) share: a
//! handle another thread uses to end one, and the wait between polls that
//! keeps to a caller's deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ends a stream from elsewhere (another thread, a signal handler's flag
/// watcher): the stream returns `None` at its next poll, within one poll
/// interval.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the stream to end.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`StopHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Sleeps `interval`, or less when `deadline` comes first; false when the
/// stream should end instead (stopped, or the deadline passed).
pub(crate) fn pause(interval: Duration, deadline: Option<Instant>, stop: &StopHandle) -> bool {
    if stop.is_stopped() {
        return false;
    }
    let nap = match deadline {
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => left.min(interval),
            _ => return false,
        },
        None => interval,
    };
    std::thread::sleep(nap);
    !stop.is_stopped()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_or_late_stream_does_not_wait() {
        let stop = StopHandle::default();
        assert!(pause(Duration::from_millis(1), None, &stop));
        // a deadline already past ends the stream without sleeping the interval
        let past = Instant::now();
        assert!(!pause(Duration::from_secs(3600), Some(past), &stop));
        stop.clone().stop();
        assert!(!pause(Duration::from_secs(3600), None, &stop));
    }
}
