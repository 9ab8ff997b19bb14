//! When each repository is scanned: cron or preset schedules in the repository's time zone.
//! Pure cron math; the loop that turns due repositories into `scan_repo` jobs is
//! `jobs::scheduler`.
//!
//! - A schedule is a 5-field cron expression (croner, seconds disallowed) or a preset:
//!   `hourly`, `daily`, `weekly`, `monthly`. Presets become cron expressions with a minute,
//!   hour, weekday and day of month derived from the repository id, so 10,000 repositories
//!   on `daily` spread over the day instead of firing together, and each one keeps its slot
//!   across restarts and versions (the hash is spelled out here, not `std`'s).
//! - Cron semantics are Vixie cron's, as croner implements them: when both day-of-month and
//!   day-of-week are restricted, a day matching *either* runs (`0 6 1 * 1` is the 1st and
//!   every Monday). Across DST, a time that does not exist (02:30 on the last Sunday of March
//!   in Europe/Berlin) runs at the first instant after the gap (03:00 CEST), and a time that
//!   exists twice (02:30 on the last Sunday of October) runs once, at the first of the two.
//! - Every function takes `now` explicitly; nothing here reads a clock.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use tracing::warn;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("schedule {expr:?}: {message}")]
    Invalid { expr: String, message: String },
    #[error("timezone {0:?} is not an IANA time zone")]
    UnknownTimezone(String),
    #[error("schedule {0:?} never runs again")]
    NoNext(String),
}

/// Where a repository's preset schedule puts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter {
    pub minute: u32,
    pub hour: u32,
    /// 0 = Sunday.
    pub weekday: u32,
    /// 1..=28, so every month has it.
    pub day_of_month: u32,
}

/// SplitMix64's finaliser: a fixed, well-mixing hash of the repository id.
fn mix(id: i64) -> u64 {
    let mut z = (id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn jitter(repository_id: i64) -> Jitter {
    let h = mix(repository_id);
    Jitter {
        minute: (h % 60) as u32,
        hour: ((h >> 16) % 24) as u32,
        weekday: ((h >> 32) % 7) as u32,
        day_of_month: ((h >> 48) % 28) as u32 + 1,
    }
}

/// The cron expression a schedule means for this repository (presets get its jitter).
pub fn effective_expr(expr: &str, repository_id: i64) -> String {
    let j = jitter(repository_id);
    match expr.trim() {
        "hourly" => format!("{} * * * *", j.minute),
        "daily" => format!("{} {} * * *", j.minute, j.hour),
        "weekly" => format!("{} {} * * {}", j.minute, j.hour, j.weekday),
        "monthly" => format!("{} {} {} * *", j.minute, j.hour, j.day_of_month),
        other => other.to_string(),
    }
}

/// A parsed schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
    expr: String,
}

impl Schedule {
    pub fn parse(expr: &str, tz: Tz, repository_id: i64) -> Result<Schedule, ScheduleError> {
        let effective = effective_expr(expr, repository_id);
        let invalid = |message: String| ScheduleError::Invalid {
            expr: expr.to_string(),
            message,
        };
        let fields = effective.split_whitespace().count();
        if fields != 5 {
            return Err(invalid(format!(
                "want hourly, daily, weekly, monthly or 5 cron fields, found {fields}"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(&effective)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Schedule {
            cron,
            tz,
            expr: effective,
        })
    }

    /// `timezone` by IANA name.
    pub fn parse_in(
        expr: &str,
        timezone: &str,
        repository_id: i64,
    ) -> Result<Schedule, ScheduleError> {
        let tz = timezone
            .parse::<Tz>()
            .map_err(|_| ScheduleError::UnknownTimezone(timezone.to_string()))?;
        Schedule::parse(expr, tz, repository_id)
    }

    /// The cron expression, presets resolved.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first run strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        let local = now.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ScheduleError::NoNext(self.expr.clone()))
    }
}

/// The least time an operator may let between two scans of a repository by default.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(3600);

/// Checks that a schedule (already a valid preset or 5-field expression) runs at all, and
/// never twice within `min_interval`. Gaps are measured on the clock as written, as if
/// there were no daylight saving time: a DST change that once shortens a night does not
/// make `0 3 * * *` "too frequent". The error says why, for the configuration's users.
pub fn check_frequency(expr: &str, min_interval: Duration) -> Result<(), String> {
    // Presets' jitter moves their slot, not their spacing: any repository id will do.
    let effective = effective_expr(expr, 0);
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(&effective)
        .map_err(|e| format!("schedule {expr:?} is not a valid cron expression: {e}"))?;
    let never = || format!("schedule {expr:?} never runs: no date matches it");
    // Minutes of the day it runs at (the same on every day it runs).
    let times: Vec<i64> = (0..24u32)
        .flat_map(|h| (0..60u32).map(move |m| (h, m)))
        .filter(|&(h, m)| {
            cron.pattern.hour_match(h).unwrap_or(false)
                && cron.pattern.minute_match(m).unwrap_or(false)
        })
        .map(|(h, m)| i64::from(h * 60 + m))
        .collect();
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return Err(never());
    };
    // Days it runs on, over two leap-year cycles; the closest two bound the gap between
    // one day's last run and the next run day's first. A schedule with no day there (the
    // fifth Monday of February, or never) is looked for over the whole 400-year cycle of
    // the calendar, after which every date pattern repeats.
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or_default();
    let runs_on = |day: &chrono::NaiveDate| {
        day.and_hms_opt((first / 60) as u32, (first % 60) as u32, 0)
            .is_some_and(|t| cron.is_time_matching(&t.and_utc()).unwrap_or(false))
    };
    let mut previous: Option<chrono::NaiveDate> = None;
    let mut closest_days: Option<i64> = None;
    for day in start.iter_days().take(8 * 366).filter(runs_on) {
        if let Some(p) = previous {
            let d = (day - p).num_days();
            closest_days = Some(closest_days.map_or(d, |c| c.min(d)));
        }
        previous = Some(day);
    }
    if previous.is_none() {
        return match start.iter_days().take(146_097).any(|d| runs_on(&d)) {
            true => Ok(()),
            false => Err(never()),
        };
    }
    let within_day = times.windows(2).map(|w| w[1] - w[0]).min();
    let across_days = closest_days.map(|d| d * 24 * 60 - (last - first));
    let Some(gap) = within_day.into_iter().chain(across_days).min() else {
        return Ok(());
    };
    let min_minutes = i64::try_from(min_interval.as_secs() / 60).unwrap_or(i64::MAX);
    if gap < min_minutes {
        return Err(format!(
            "schedule {expr:?} runs {} after a previous run; this server scans a repository at most once every {} (ask its operator, or use a schedule such as \"daily\")",
            minutes_text(gap),
            minutes_text(min_minutes),
        ));
    }
    Ok(())
}

/// `90` → `1 hour 30 minutes`.
fn minutes_text(minutes: i64) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let (d, h, m) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let parts: Vec<String> = [(d, "day"), (h, "hour"), (m, "minute")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| plural(n, u))
        .collect();
    if parts.is_empty() {
        "0 minutes".into()
    } else {
        parts.join(" ")
    }
}

/// The next scan of a repository after `now`. The stored schedule was validated with the
/// config; should it still fail (e.g. a time zone dropped from the tz database), the
/// repository falls back to `daily` in UTC rather than never being scanned.
pub fn next_scan_at(
    repository_id: i64,
    schedule: &str,
    timezone: &str,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match Schedule::parse_in(schedule, timezone, repository_id).and_then(|s| s.next_after(now)) {
        Ok(t) => t,
        Err(e) => {
            warn!(repository_id, error = %e, "invalid stored schedule; using daily in UTC");
            Schedule::parse("daily", chrono_tz::UTC, repository_id)
                .and_then(|s| s.next_after(now))
                .unwrap_or(now + TimeDelta::days(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = DEFAULT_MIN_INTERVAL;

    #[test]
    fn schedules_that_never_run_are_refused() {
        for never in ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"] {
            let e = check_frequency(never, HOUR).unwrap_err();
            assert!(e.contains("never runs"), "{never}: {e}");
        }
        // Rare is not never: Feb 29 comes every leap year, a fifth Monday in February
        // every 28 years or so.
        check_frequency("0 0 29 2 *", HOUR).unwrap();
        check_frequency("0 0 * 2 1#5", HOUR).unwrap();
    }

    #[test]
    fn schedules_more_frequent_than_the_minimum_are_refused() {
        for (expr, min, gap) in [
            ("* * * * *", HOUR, "1 minute"),
            ("*/30 * * * *", HOUR, "30 minutes"),
            ("0,30 6 * * *", HOUR, "30 minutes"),
            // 23:00, then 00:00 the next day.
            ("0 0,23 * * *", 2 * HOUR, "1 hour"),
            ("30 23 * * *", 48 * HOUR, "1 day"),
            ("0 6 * * 1,2", 48 * HOUR, "1 day"),
        ] {
            let e = check_frequency(expr, min).unwrap_err();
            assert!(e.contains(&format!("runs {gap} after")), "{expr}: {e}");
        }
        let e = check_frequency("* * * * *", HOUR).unwrap_err();
        assert!(e.contains("at most once every 1 hour"), "{e}");
        // Every other day is two days apart.
        check_frequency("0 6 * * 1,3,5", 48 * HOUR).unwrap();
    }

    #[test]
    fn presets_and_ordinary_schedules_pass_the_default() {
        for ok in [
            "hourly",
            "daily",
            "weekly",
            "monthly",
            "0 * * * *",
            "0 6 * * 1-5",
            "0 6 1 * 1",
            "15 */2 * * *",
            "0 0,12 * * *",
        ] {
            check_frequency(ok, HOUR).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        // A minimum of zero allows anything that runs.
        check_frequency("* * * * *", Duration::ZERO).unwrap();
        assert!(check_frequency("hourly", 2 * HOUR).is_err());
    }
}
