//! The schedule of the alternative ("turtle") rate limits, as Transmission keeps it: the
//! minutes `[begin, end)` after local midnight of each day whose bit is set (Sunday 1,
//! Monday 2, ... Saturday 64); a range whose end is not after its begin runs past midnight
//! into the next day. Once a second the registry's tick asks [`Schedule::due`]; when the
//! answer changes, the alternative limits are switched on or off, so a switch made by hand
//! in between holds until the next edge of the schedule (Transmission's rule).

use serde::{Deserialize, Serialize};

const DAY: u32 = 24 * 60;
const WEEK: u32 = 7 * DAY;

/// A schedule as `session-set` gives it (`alt-speed-time-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub enabled: bool,
    /// Minutes after local midnight, 0 to 1440.
    pub begin: u16,
    pub end: u16,
    /// Days, a bit each from Sunday (1) to Saturday (64).
    pub days: u8,
}

impl Default for Schedule {
    /// Transmission's: 09:00 to 17:00 every day, off.
    fn default() -> Self {
        Schedule {
            enabled: false,
            begin: 540,
            end: 1020,
            days: 127,
        }
    }
}

/// A moment of the local week: the day (0 Sunday) and the minute after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekMinute {
    pub weekday: u8,
    pub minute: u16,
}

impl WeekMinute {
    /// Now, in the machine's local time.
    pub fn now() -> WeekMinute {
        let t = libc::time_t::try_from(crate::registry::unix_now()).unwrap_or(0);
        // SAFETY: localtime_r writes only into `tm`, which lives on this stack.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
            return WeekMinute {
                weekday: 0,
                minute: 0,
            };
        }
        WeekMinute {
            weekday: tm.tm_wday.clamp(0, 6) as u8,
            minute: (tm.tm_hour.clamp(0, 23) * 60 + tm.tm_min.clamp(0, 59)) as u16,
        }
    }
}

impl Schedule {
    /// Whether the alternative limits are due at `at` (whatever `enabled` says).
    pub fn due(&self, at: WeekMinute) -> bool {
        let now = u32::from(at.weekday) * DAY + u32::from(at.minute);
        let begin = u32::from(self.begin);
        let mut end = u32::from(self.end);
        if end <= begin {
            end += DAY;
        }
        (0..7u32).filter(|d| self.days & (1 << d) != 0).any(|d| {
            let start = d * DAY + begin;
            // Minutes since the range's start, around the week.
            (now + WEEK - start % WEEK) % WEEK < end - begin
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(weekday: u8, h: u16, m: u16) -> WeekMinute {
        WeekMinute {
            weekday,
            minute: h * 60 + m,
        }
    }

    #[test]
    fn the_default_runs_from_nine_to_five_every_day() {
        let s = Schedule::default();
        assert!(!s.due(at(1, 8, 59)));
        assert!(s.due(at(1, 9, 0)));
        assert!(s.due(at(3, 16, 59)));
        assert!(!s.due(at(3, 17, 0)));
    }

    #[test]
    fn a_range_past_midnight_spills_into_the_next_day_and_around_the_week() {
        // Saturday only, 22:00 to 06:00: Saturday night and Sunday morning.
        let s = Schedule {
            enabled: true,
            begin: 22 * 60,
            end: 6 * 60,
            days: 64,
        };
        assert!(s.due(at(6, 23, 0)));
        assert!(s.due(at(0, 5, 59)));
        assert!(!s.due(at(0, 6, 0)));
        assert!(!s.due(at(5, 23, 0)));
        assert!(!s.due(at(6, 5, 0)));
    }

    #[test]
    fn weekdays_and_whole_days() {
        let weekdays = Schedule {
            enabled: true,
            begin: 0,
            end: 0,
            days: 62,
        };
        assert!(weekdays.due(at(1, 0, 0)) && weekdays.due(at(5, 23, 59)));
        assert!(!weekdays.due(at(6, 12, 0)) && !weekdays.due(at(0, 12, 0)));
        let never = Schedule {
            days: 0,
            ..weekdays
        };
        assert!(!never.due(at(2, 12, 0)));
    }
}
