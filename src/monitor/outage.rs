//! The outage state machine of one watched hub, apart from all I/O: probe results go in,
//! what to do (alert, record) comes out, and the whole state is a serde document that
//! `mcvpn monitor` keeps in its state file so that a restart loses nothing.
//!
//! Art. 35-1 counts from the moment the operator knew the service was down: an outage
//! starts at the **first failed probe** of a run and ends at the **first successful
//! probe** after it. A run shorter than `failures_for_outage` probes is a blip, not an
//! outage: nothing is alerted or recorded for it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One outage from its first failed probe to the first successful one after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What the caller must do after a probe result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The run of failures just became an outage: tell the operator it started at `start`.
    AlertStart { start: DateTime<Utc>, failures: u32 },
    /// The outage ended: tell the operator. It is now waiting in [`Tracker::pending`] to
    /// be recorded through the admin API.
    AlertEnd(Outage),
}

/// The state of one watched hub. Every field is kept in the state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracker {
    /// Failed probes since the last success.
    pub failures: u32,
    /// When the first of them was made (the start of a possible outage).
    pub first_failure: Option<DateTime<Utc>>,
    /// Whether the run has reached `failures_for_outage` (alerted as an outage).
    pub outage_open: bool,
    /// Ended outages not yet acknowledged by the hub's `outage record`, oldest first.
    pub pending: Vec<Outage>,
}

impl Tracker {
    /// A probe made at `at` failed.
    pub fn on_failure(&mut self, at: DateTime<Utc>, failures_for_outage: u32) -> Option<Action> {
        self.failures = self.failures.saturating_add(1);
        let start = *self.first_failure.get_or_insert(at);
        if !self.outage_open && self.failures >= failures_for_outage.max(1) {
            self.outage_open = true;
            return Some(Action::AlertStart {
                start,
                failures: self.failures,
            });
        }
        None
    }

    /// A probe made at `at` succeeded.
    pub fn on_success(&mut self, at: DateTime<Utc>) -> Option<Action> {
        let start = self.first_failure.take();
        let was_open = std::mem::take(&mut self.outage_open);
        self.failures = 0;
        match start {
            Some(start) if was_open => {
                let outage = Outage { start, end: at };
                self.pending.push(outage);
                Some(Action::AlertEnd(outage))
            }
            _ => None,
        }
    }

    /// The hub acknowledged `outage` (added, extended or already there): stop sending it.
    pub fn on_recorded(&mut self, outage: &Outage) {
        self.pending.retain(|o| o != outage);
    }

    /// The outage in progress, if the run of failures is one: its start.
    pub fn current_outage_start(&self) -> Option<DateTime<Utc>> {
        self.first_failure.filter(|_| self.outage_open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn first_failure_is_the_start_and_first_success_the_end() {
        let mut tr = Tracker::default();
        assert_eq!(tr.on_success(t(0)), None);
        assert_eq!(tr.on_failure(t(30), 2), None, "one failure is not an outage yet");
        assert_eq!(
            tr.on_failure(t(60), 2),
            Some(Action::AlertStart {
                start: t(30),
                failures: 2
            })
        );
        assert_eq!(tr.current_outage_start(), Some(t(30)));
        // Alerted once, however long it lasts.
        assert_eq!(tr.on_failure(t(90), 2), None);
        assert_eq!(tr.on_failure(t(120), 2), None);
        let ended = Outage {
            start: t(30),
            end: t(150),
        };
        assert_eq!(tr.on_success(t(150)), Some(Action::AlertEnd(ended)));
        assert_eq!(tr.pending, vec![ended]);
        assert_eq!(tr.current_outage_start(), None);
        // Later successes change nothing; recording clears it.
        assert_eq!(tr.on_success(t(180)), None);
        tr.on_recorded(&ended);
        assert!(tr.pending.is_empty());
    }

    #[test]
    fn a_blip_shorter_than_the_threshold_is_no_outage() {
        let mut tr = Tracker::default();
        assert_eq!(tr.on_failure(t(0), 3), None);
        assert_eq!(tr.on_failure(t(30), 3), None);
        assert_eq!(tr.on_success(t(60)), None);
        assert!(tr.pending.is_empty());
        // The next run starts afresh, at its own first failure.
        tr.on_failure(t(90), 3);
        tr.on_failure(t(120), 3);
        assert!(matches!(
            tr.on_failure(t(150), 3),
            Some(Action::AlertStart { start, .. }) if start == t(90)
        ));
    }

    #[test]
    fn a_restart_from_the_state_file_keeps_the_start_and_the_pending() {
        let mut tr = Tracker::default();
        tr.on_failure(t(0), 2);
        tr.on_failure(t(30), 2);
        tr.on_success(t(60));
        tr.on_failure(t(90), 2);
        tr.on_failure(t(120), 2);
        let saved = serde_json::to_string(&tr).unwrap();
        // The monitor stops here and starts again from the file.
        let mut back: Tracker = serde_json::from_str(&saved).unwrap();
        assert_eq!(back, tr);
        assert_eq!(back.on_failure(t(150), 2), None, "already alerted before the restart");
        assert_eq!(
            back.on_success(t(180)),
            Some(Action::AlertEnd(Outage {
                start: t(90),
                end: t(180)
            }))
        );
        assert_eq!(
            back.pending,
            vec![
                Outage {
                    start: t(0),
                    end: t(60)
                },
                Outage {
                    start: t(90),
                    end: t(180)
                }
            ]
        );
    }

    #[test]
    fn recording_is_idempotent() {
        let mut tr = Tracker::default();
        tr.on_failure(t(0), 1);
        tr.on_success(t(30));
        let o = tr.pending[0];
        tr.on_recorded(&o);
        tr.on_recorded(&o);
        assert!(tr.pending.is_empty());
    }
}
