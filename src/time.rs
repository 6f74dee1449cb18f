//! Wall-clock instants as the journal and the progress lines write them:
//! RFC 3339, UTC, to the millisecond (`2025-12-15T23:08:22.123Z`).
//!
//! One fixed width and one zone, so that timestamps sort as text and line
//! up with the kernel's and the engines' logs when a run is triaged. A leaf
//! of the crate (it uses nothing of it), so that every layer can tell time.
//! The calendar arithmetic is a dozen lines (Hinnant's algorithms), which
//! is why no date crate is pulled in for it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since.as_millis() as u64)
    }

    pub fn from_millis(millis: u64) -> Timestamp {
        Timestamp(millis)
    }

    pub fn millis(self) -> u64 {
        self.0
    }

    /// Milliseconds from `earlier` to `self` (0 if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The time of day, `HH:MM:SS.mmm` (UTC): what progress lines start
    /// with, so that they line up with the journal's instants.
    pub fn clock(self) -> String {
        let rest = self.0 / 1000 % 86_400;
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60,
            self.0 % 1000
        )
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        let bad = || format!("{text:?} is not an RFC 3339 UTC time like 2025-12-15T23:08:22.123Z");
        let body = text.strip_suffix('Z').ok_or_else(bad)?;
        let (date, time) = body.split_once('T').ok_or_else(bad)?;
        let number = |s: &str, len: usize| -> Result<u64, String> {
            if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        let mut date_parts = date.split('-');
        let year = number(date_parts.next().unwrap_or_default(), 4)?;
        let month = number(date_parts.next().unwrap_or_default(), 2)?;
        let day = number(date_parts.next().unwrap_or_default(), 2)?;
        let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
        let mut clock_parts = clock.split(':');
        let hour = number(clock_parts.next().unwrap_or_default(), 2)?;
        let minute = number(clock_parts.next().unwrap_or_default(), 2)?;
        let second = number(clock_parts.next().unwrap_or_default(), 2)?;
        if date_parts.next().is_some()
            || clock_parts.next().is_some()
            || !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(bad());
        }
        // Milliseconds from the first three digits of the fraction.
        let millis = if fraction.is_empty() {
            0
        } else {
            let digits: String = fraction.chars().chain("00".chars()).take(3).collect();
            number(&digits, 3)?
        };
        let days = days_from_civil(year as i64, month as u32, day as u32);
        // A day past the end of its month (Feb 31, Apr 31) would count on
        // into the next month: only a real date comes back as itself.
        if civil_from_days(days) != (year as i64, month as u32, day as u32) {
            return Err(bad());
        }
        let seconds = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
        u64::try_from(seconds)
            .map(|s| Timestamp(s * 1000 + millis))
            .map_err(|_| bad())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = civil_from_days((self.0 / 1000 / 86_400) as i64);
        write!(f, "{year:04}-{month:02}-{day:02}T{}Z", self.clock())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_known_instants() {
        // `date -u -d @1765840102 +%FT%TZ` → 2025-12-15T23:08:22Z
        let seed = Timestamp::from_millis(1_765_840_102_123);
        assert_eq!(seed.to_string(), "2025-12-15T23:08:22.123Z");
        assert_eq!(seed.clock(), "23:08:22.123");
        assert_eq!(Timestamp::parse("2025-12-15T23:08:22.123Z").unwrap(), seed);
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        // A leap day, and a fraction given to other precisions.
        let leap = Timestamp::parse("2024-02-29T12:00:00Z").unwrap();
        assert_eq!(leap.to_string(), "2024-02-29T12:00:00.000Z");
        assert_eq!(
            Timestamp::parse("2024-02-29T12:00:00.5Z").unwrap().millis(),
            leap.millis() + 500
        );
        assert_eq!(
            Timestamp::parse("2024-02-29T12:00:00.123456Z")
                .unwrap()
                .millis(),
            leap.millis() + 123
        );
    }

    #[test]
    fn every_day_round_trips() {
        for day in (0..80_000u64).step_by(7) {
            let t = Timestamp::from_millis(day * 86_400_000 + 45_296_789);
            assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t, "{t}");
        }
    }

    #[test]
    fn rejects_other_zones_and_shapes() {
        for text in [
            "2025-12-15T23:08:22+01:00",
            "2025-12-15 23:08:22Z",
            "2025-13-01T00:00:00Z",
            "2025-02-31T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "yesterday",
        ] {
            assert!(Timestamp::parse(text).is_err(), "{text}");
        }
    }
}
