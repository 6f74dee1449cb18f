//! Durations (`90s`, `5m`, `1h30m`) and sizes (`512MiB`, `2GiB`, `1.5G`) as
//! plans write them.
//!
//! Both demand a unit: a bare `90` could mean seconds or minutes, `2048`
//! bytes or MiB, and a plan that guesses wrong waits an hour or budgets 2 KiB.
//! Each serializes back to its shortest exact spelling, so a resolved plan
//! printed as JSON reads the same way and parses again.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// A length of time, to the millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

/// What a duration looks like; also the schema's pattern.
const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";
const DURATION_EXPECTED: &str = "a duration with units, like 90s, 5m, 1h30m or 500ms";

impl Duration {
    pub const fn from_secs(secs: u64) -> Duration {
        Duration(std::time::Duration::from_secs(secs))
    }

    pub fn get(self) -> std::time::Duration {
        self.0
    }

    /// Parses `90s`, `5m`, `1h30m`, `500ms`: numbers each followed by a
    /// unit (h, m, s, ms), largest first or not.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let bad = || format!("{text:?} is not {DURATION_EXPECTED}");
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut millis: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let (unit, factor) = [("ms", 1), ("h", 3_600_000), ("m", 60_000), ("s", 1000)]
                .into_iter()
                .find(|(unit, _)| rest.starts_with(unit))
                .ok_or_else(bad)?;
            rest = &rest[unit.len()..];
            millis = number
                .checked_mul(factor)
                .and_then(|part| millis.checked_add(part))
                .ok_or_else(bad)?;
        }
        Ok(Duration(std::time::Duration::from_millis(millis)))
    }
}

impl fmt::Display for Duration {
    /// `1h30m`, `1m30s`, `500ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
            if millis >= size {
                write!(f, "{}{unit}", millis / size)?;
                millis %= size;
            }
        }
        Ok(())
    }
}

/// A number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(u64);

const SIZE_PATTERN: &str =
    "^[0-9]+(\\.[0-9]+)?(B|KiB|Ki|MiB|Mi|GiB|Gi|TiB|Ti|kB|KB|K|MB|M|GB|G|TB|T)$";
const SIZE_EXPECTED: &str = "a size with a unit, like 512MiB, 2GiB, 1.5Gi or 800MB";

/// Units, longest spelling first so that `GiB` is not read as `G`.
const SIZE_UNITS: [(&str, u64); 17] = [
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("kB", 1_000),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

impl Size {
    pub const fn from_bytes(bytes: u64) -> Size {
        Size(bytes)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// Parses `512MiB`, `2GiB`, `1.5Gi` (binary), `800MB`, `2G` (decimal, as
    /// Kubernetes reads them) and `4096B`.
    pub fn parse(text: &str) -> Result<Size, String> {
        let bad = || format!("{text:?} is not {SIZE_EXPECTED}");
        let text = text.trim();
        let number_len = text
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, unit) = text.split_at(number_len);
        let factor = if unit == "B" {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, factor)| *factor)
                .ok_or_else(bad)?
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
            return Err(bad());
        }
        let whole: u64 = whole.parse().map_err(|_| bad())?;
        let mut bytes = whole.checked_mul(factor).ok_or_else(bad)?;
        // The fraction in exact integer arithmetic: 1.5GiB is 1610612736 B,
        // with no float rounding.
        if !fraction.is_empty() {
            let digits: u64 = fraction.parse().map_err(|_| bad())?;
            let scale = 10u64.checked_pow(fraction.len() as u32).ok_or_else(bad)?;
            let part = u128::from(digits) * u128::from(factor) / u128::from(scale);
            bytes = bytes
                .checked_add(u64::try_from(part).map_err(|_| bad())?)
                .ok_or_else(bad)?;
        }
        Ok(Size(bytes))
    }
}

impl fmt::Display for Size {
    /// The largest binary unit that holds the size exactly: `2GiB`, `1536MiB`, `100B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// Deserializes from a string only: numbers are refused with what was
/// expected, and the YAML reader adds where.
struct TextVisitor<T> {
    expected: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Visitor<'_> for TextVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        (self.parse)(text).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor {
            expected: DURATION_EXPECTED,
            parse: Duration::parse,
        })
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor {
            expected: SIZE_EXPECTED,
            parse: Size::parse,
        })
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": DURATION_EXPECTED,
            "examples": ["90s", "5m", "1h30m"],
        })
    }
}

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": SIZE_PATTERN,
            "description": SIZE_EXPECTED,
            "examples": ["512MiB", "2GiB"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_back() {
        let cases = [
            ("90s", 90_000, "1m30s"),
            ("5m", 300_000, "5m"),
            ("1h30m", 5_400_000, "1h30m"),
            ("500ms", 500, "500ms"),
            ("2m500ms", 120_500, "2m500ms"),
            ("0s", 0, "0s"),
        ];
        for (text, millis, shown) in cases {
            let duration = Duration::parse(text).unwrap();
            assert_eq!(duration.get().as_millis(), millis, "{text}");
            assert_eq!(duration.to_string(), shown, "{text}");
            assert_eq!(Duration::parse(shown).unwrap(), duration);
        }
    }

    #[test]
    fn durations_need_units() {
        for text in [
            "90",
            "",
            "5 m",
            "m",
            "1d",
            "1.5h",
            "-5s",
            "99999999999999999999h",
        ] {
            let error = Duration::parse(text).unwrap_err();
            assert!(error.contains("like 90s"), "{text}: {error}");
        }
    }

    #[test]
    fn sizes_parse_exactly() {
        let cases = [
            ("512MiB", 512 << 20, "512MiB"),
            ("2GiB", 2 << 30, "2GiB"),
            ("2Gi", 2 << 30, "2GiB"),
            ("1.5GiB", 3 << 29, "1536MiB"),
            ("800MB", 800_000_000, "781250KiB"),
            ("2G", 2_000_000_000, "1953125KiB"),
            ("4096B", 4096, "4KiB"),
            ("1kB", 1000, "1000B"),
        ];
        for (text, bytes, shown) in cases {
            let size = Size::parse(text).unwrap();
            assert_eq!(size.bytes(), bytes, "{text}");
            assert_eq!(size.to_string(), shown, "{text}");
            assert_eq!(Size::parse(shown).unwrap(), size);
        }
    }

    #[test]
    fn sizes_need_units() {
        for text in [
            "2048", "2 GiB", "GiB", "1.GiB", ".5GiB", "2gb", "2Gb", "1.2.3GiB",
        ] {
            let error = Size::parse(text).unwrap_err();
            assert!(error.contains("like 512MiB"), "{text}: {error}");
        }
    }

    /// The schema's patterns accept exactly what the parsers accept, so
    /// that editors flag neither a valid plan nor miss an invalid one.
    #[test]
    fn schema_patterns_agree_with_the_parsers() {
        let mut generator = SchemaGenerator::default();
        let duration =
            jsonschema::validator_for(&Duration::json_schema(&mut generator).to_value()).unwrap();
        let size =
            jsonschema::validator_for(&Size::json_schema(&mut generator).to_value()).unwrap();
        let texts = [
            "90s", "5m", "1h30m", "500ms", "90", "5 m", "1d", "1.5h", "512MiB", "1.5GiB", "2Gi",
            "800MB", "2G", "4096B", "1kB", "2048", "2 GiB", "GiB", "1.GiB", ".5GiB", "2gb",
            "1.2.3GiB",
        ];
        for text in texts {
            let value = serde_json::Value::from(text);
            assert_eq!(
                duration.is_valid(&value),
                Duration::parse(text).is_ok(),
                "{text}"
            );
            assert_eq!(size.is_valid(&value), Size::parse(text).is_ok(), "{text}");
        }
    }
}
