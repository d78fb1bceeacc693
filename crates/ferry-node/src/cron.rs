//! Cron expressions for scheduled jobs ([`crate::schedules`]): the standard five fields
//! `minute hour day-of-month month day-of-week`, evaluated in UTC or at a fixed offset from it
//! (no daylight-saving rules: a bank's 02:00 run must not happen twice or never on the night
//! the clocks change, so an offset is all a schedule may name).
//!
//! Each field is a comma-separated list of `*`, `N`, `N-M`, each optionally followed by
//! `/STEP` (`*/15`, `8-18/2`; `N/STEP` means `N-max/STEP`, as in Vixie cron). Months may be
//! named `JAN`..`DEC`, days of the week `SUN`..`SAT` (case-insensitive); day of week 0 and 7
//! are both Sunday.
//!
//! Day-of-month and day-of-week combine as in Vixie cron: when both are restricted (neither
//! starts with `*`), a day matches if **either** matches (`0 0 1 * MON` is the 1st of every
//! month and every Monday); when either starts with `*`, a day must match both (so with a
//! plain `*` only the other field counts, and `*/2` with `FRI` is the Fridays of odd date).
//!
//! An expression that can never fire (`0 0 30 FEB *`) is refused when it is parsed.

use std::fmt;

/// Longest cron expression accepted (bounds what a partner's proposal may carry).
pub const MAX_CRON_LEN: usize = 200;

/// Largest fixed offset from UTC, in minutes (UTC+14:00 is the furthest any zone goes).
pub const MAX_OFFSET_MINUTES: i32 = 14 * 60;

/// How far ahead a next fire time is searched. Every satisfiable expression fires within
/// 8 years and a day (29 February skips 2100, a year not divisible by 400), so 9 years never
/// misses one; nothing beyond is searched.
const SEARCH_DAYS: i64 = 9 * 366;

/// Why an expression does not parse: the field, the value in it, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cron expression '{expr}': {field} field '{value}': {reason}")]
pub struct CronError {
    pub expr: String,
    /// `minute`, `hour`, `day-of-month`, `month`, `day-of-week`, or `expression` for the
    /// whole (wrong number of fields, never fires).
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

#[derive(Clone, Copy)]
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTH_NAMES: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: MONTH_NAMES,
    },
    // 7 is accepted as Sunday and folded onto 0 after parsing.
    Field {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: DAY_NAMES,
    },
];

/// A parsed cron expression with its offset from UTC.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    offset_minutes: i32,
    /// Bit `i` set: value `i` matches.
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// The field starts with `*` (Vixie's rule for combining the two day fields).
    dom_star: bool,
    dow_star: bool,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cron({:?}, {})",
            self.text,
            format_offset(self.offset_minutes)
        )
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, format_offset(self.offset_minutes))
    }
}

/// `UTC`, `UTC+08:00`, `UTC-05:30`.
pub fn format_offset(minutes: i32) -> String {
    if minutes == 0 {
        return "UTC".into();
    }
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

/// Parses a fixed offset: `UTC`, `Z`, `+08:00`, `-0530`, `UTC+8`, `+8`.
pub fn parse_offset(text: &str) -> Result<i32, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "timezone '{}': give a fixed offset from UTC such as UTC, +08:00 or -05:30 \
             (named zones with daylight saving are not supported)",
            t.escape_debug()
        )
    };
    let rest = t
        .strip_prefix("UTC")
        .or_else(|| t.strip_prefix("utc"))
        .unwrap_or(t);
    if rest.is_empty() || rest == "Z" || rest == "z" {
        return Ok(0);
    }
    let (sign, digits) = match rest.as_bytes()[0] {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = match digits.split_once(':') {
        Some((h, m)) => (h, m),
        None if digits.len() == 4 => digits.split_at(2),
        None => (digits, "0"),
    };
    let all_digits =
        |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(h) || !all_digits(m) {
        return Err(bad());
    }
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m >= 60 {
        return Err(bad());
    }
    let total = sign * (h * 60 + m);
    if total.abs() > MAX_OFFSET_MINUTES {
        return Err(format!(
            "timezone '{}': offsets go from -14:00 to +14:00",
            t.escape_debug()
        ));
    }
    Ok(total)
}

impl Cron {
    /// Parses `text` (five fields) evaluated at `offset_minutes` from UTC.
    pub fn parse(text: &str, offset_minutes: i32) -> Result<Cron, CronError> {
        let expr = text.trim();
        let whole = |value: &str, reason: String| CronError {
            expr: expr.chars().take(MAX_CRON_LEN).collect(),
            field: "expression",
            value: value.chars().take(MAX_CRON_LEN).collect(),
            reason,
        };
        if expr.len() > MAX_CRON_LEN {
            return Err(whole("", format!("longer than {MAX_CRON_LEN} characters")));
        }
        if offset_minutes.abs() > MAX_OFFSET_MINUTES {
            return Err(whole(
                expr,
                format!("the offset {offset_minutes} min is outside ±{MAX_OFFSET_MINUTES} min"),
            ));
        }
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(whole(
                expr,
                format!(
                    "has {} fields; a cron expression has 5: minute hour day-of-month month day-of-week (e.g. \"0 2 * * *\": 02:00 every day)",
                    parts.len()
                ),
            ));
        }
        let mut sets = [0u64; 5];
        for (i, (part, field)) in parts.iter().zip(FIELDS).enumerate() {
            sets[i] = parse_field(part, field).map_err(|reason| CronError {
                expr: expr.to_string(),
                field: field.name,
                value: part.to_string(),
                reason,
            })?;
        }
        // Sunday is 0 and 7.
        let mut dow = sets[4];
        if dow & (1 << 7) != 0 {
            dow = (dow & !(1 << 7)) | 1;
        }
        let cron = Cron {
            text: parts.join(" "),
            offset_minutes,
            minutes: sets[0],
            hours: sets[1],
            days_of_month: sets[2],
            months: sets[3],
            days_of_week: dow,
            dom_star: parts[2].starts_with('*'),
            dow_star: parts[4].starts_with('*'),
        };
        // 2000-01-01: a leap year, so 29 February counts as possible.
        if cron.next_after(946_684_800).is_none() {
            return Err(whole(
                expr,
                "never fires: no month it names has the day of the month it names".into(),
            ));
        }
        Ok(cron)
    }

    /// The expression as given (fields separated by one space).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn offset_minutes(&self) -> i32 {
        self.offset_minutes
    }

    fn day_matches(&self, dom: u32, dow: u32) -> bool {
        let d = self.days_of_month & (1 << dom) != 0;
        let w = self.days_of_week & (1 << dow) != 0;
        if self.dom_star || self.dow_star {
            d && w
        } else {
            d || w
        }
    }

    /// Whether the minute starting at `unix_secs` (any second within it) matches.
    pub fn matches(&self, unix_secs: i64) -> bool {
        let local = unix_secs + i64::from(self.offset_minutes) * 60;
        let days = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400);
        let (_, month, dom) = civil_from_days(days);
        let dow = weekday(days);
        self.months & (1 << month) != 0
            && self.day_matches(dom, dow)
            && self.hours & (1 << (sod / 3600)) != 0
            && self.minutes & (1 << ((sod / 60) % 60)) != 0
    }

    /// The first fire time strictly after `unix_secs` (seconds since 1970, UTC; fire times are
    /// whole minutes), `None` if there is none within the search window.
    pub fn next_after(&self, unix_secs: i64) -> Option<i64> {
        let offset = i64::from(self.offset_minutes) * 60;
        // The next whole minute, in local time.
        let start = (unix_secs + offset).div_euclid(60) * 60 + 60;
        let mut day = start.div_euclid(86_400);
        let last_day = day + SEARCH_DAYS;
        let mut first_minute_of_day = start.rem_euclid(86_400) / 60;
        while day <= last_day {
            let (year, month, dom) = civil_from_days(day);
            if self.months & (1 << month) == 0 {
                // The first day of the next month.
                let (ny, nm) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                day = days_from_civil(ny, nm, 1);
                first_minute_of_day = 0;
                continue;
            }
            if self.day_matches(dom, weekday(day)) {
                for minute_of_day in first_minute_of_day..1440 {
                    let (h, m) = (minute_of_day / 60, minute_of_day % 60);
                    if self.hours & (1 << h) != 0 && self.minutes & (1 << m) != 0 {
                        return Some(day * 86_400 + minute_of_day * 60 - offset);
                    }
                }
            }
            day += 1;
            first_minute_of_day = 0;
        }
        None
    }
}

/// One field's set of values as a bit mask, or what is wrong with it.
fn parse_field(text: &str, field: Field) -> Result<u64, String> {
    if text.is_empty() {
        return Err("is empty".into());
    }
    let mut set = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err("has an empty list item (two commas, or a comma at an end)".into());
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("step '{s}' in '{item}' is not a whole number"))?;
                if step == 0 || step > field.max {
                    return Err(format!(
                        "step {step} in '{item}' must be between 1 and {}",
                        field.max
                    ));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a, field)?, value(b, field)?);
            if a > b {
                return Err(format!(
                    "range '{range}' goes backwards ({a} > {b}); write the smaller value first"
                ));
            }
            (a, b)
        } else {
            let v = value(range, field)?;
            // `N/STEP` runs from N to the field's maximum.
            (v, if step.is_some() { field.max } else { v })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

/// One value of a field: a number in range, or a name where the field has names.
fn value(text: &str, field: Field) -> Result<u32, String> {
    if let Some(i) = field
        .names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(text))
    {
        // Months are named from 1, days of the week from 0.
        return Ok(i as u32 + field.min);
    }
    let v: u32 = text.parse().map_err(|_| {
        if field.names.is_empty() {
            format!("'{text}' is not a number")
        } else {
            format!(
                "'{text}' is neither a number nor one of {}",
                field.names.join(" ")
            )
        }
    })?;
    if v < field.min || v > field.max {
        return Err(format!("{v} is outside {}-{}", field.min, field.max));
    }
    Ok(v)
}

/// 0 = Sunday, for a day count since 1970-01-01 (a Thursday).
fn weekday(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Parses the store's `YYYY-MM-DDTHH:MM:SS.mmmZ` into seconds since 1970 (milliseconds
/// dropped); `None` for anything else.
pub fn parse_store_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[10] != b'T' || b[23] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// Seconds since 1970 in the store's time format.
pub fn store_time(unix_secs: i64) -> String {
    ferry_store::time::format_unix_millis(unix_secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
    }

    fn next(expr: &str, from: i64) -> i64 {
        Cron::parse(expr, 0).unwrap().next_after(from).unwrap()
    }

    #[test]
    fn daily_at_two_is_the_next_two_oclock() {
        assert_eq!(
            next("0 2 * * *", at(2026, 12, 4, 11, 40)),
            at(2026, 12, 5, 2, 0)
        );
        assert_eq!(
            next("0 2 * * *", at(2026, 12, 4, 1, 59)),
            at(2026, 12, 4, 2, 0)
        );
        // Strictly after: a fire time itself gives the next one.
        assert_eq!(
            next("0 2 * * *", at(2026, 12, 4, 2, 0)),
            at(2026, 12, 5, 2, 0)
        );
        // Seconds within the fire minute are past it.
        assert_eq!(
            next("0 2 * * *", at(2026, 12, 4, 2, 0) + 30),
            at(2026, 12, 5, 2, 0)
        );
        assert_eq!(
            next("* * * * *", at(2026, 12, 31, 23, 59)),
            at(2027, 1, 1, 0, 0)
        );
    }

    #[test]
    fn month_ends_and_leap_years() {
        // The 31st skips the months without one.
        assert_eq!(
            next("0 0 31 * *", at(2026, 1, 31, 0, 0)),
            at(2026, 3, 31, 0, 0)
        );
        assert_eq!(
            next("0 0 31 * *", at(2026, 4, 1, 0, 0)),
            at(2026, 5, 31, 0, 0)
        );
        // 29 February: leap years only, and 2100 is not one.
        assert_eq!(
            next("0 0 29 2 *", at(2026, 1, 1, 0, 0)),
            at(2028, 2, 29, 0, 0)
        );
        assert_eq!(
            next("0 0 29 FEB *", at(2096, 3, 1, 0, 0)),
            at(2104, 2, 29, 0, 0)
        );
        assert_eq!(
            next("0 0 29 2 *", at(2000, 1, 1, 0, 0)),
            at(2000, 2, 29, 0, 0)
        );
        // Year end rolls over.
        assert_eq!(
            next("30 23 31 12 *", at(2026, 12, 31, 23, 30)),
            at(2027, 12, 31, 23, 30)
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_as_vixie_cron() {
        // Both restricted: either matches. 2026-12-01 is a Tuesday.
        let c = Cron::parse("0 9 1 * MON", 0).unwrap();
        assert_eq!(
            c.next_after(at(2026, 11, 30, 10, 0)),
            Some(at(2026, 12, 1, 9, 0))
        );
        assert_eq!(
            c.next_after(at(2026, 12, 1, 10, 0)),
            Some(at(2026, 12, 7, 9, 0))
        );
        // Day of week starred: only day of month counts.
        assert_eq!(
            next("0 9 15 * *", at(2026, 12, 1, 0, 0)),
            at(2026, 12, 15, 9, 0)
        );
        // A field starting with `*` (even with a step) makes both count: an odd day that is a
        // Friday. 2026-12-04 is an even Friday, 2026-12-11 an odd one.
        assert_eq!(
            next("0 9 */2 * FRI", at(2026, 12, 1, 0, 0)),
            at(2026, 12, 11, 9, 0)
        );
        // 0 and 7 are Sunday. 2026-12-06 is a Sunday.
        assert_eq!(
            next("0 0 * * 7", at(2026, 12, 1, 0, 0)),
            at(2026, 12, 6, 0, 0)
        );
        assert_eq!(
            next("0 0 * * 0", at(2026, 12, 1, 0, 0)),
            at(2026, 12, 6, 0, 0)
        );
        assert_eq!(
            next("0 0 * * sun", at(2026, 12, 1, 0, 0)),
            at(2026, 12, 6, 0, 0)
        );
    }

    #[test]
    fn lists_ranges_steps_and_names() {
        let c = Cron::parse("*/15 8-18/2 * JAN,Jul-aug mon-FRI", 0).unwrap();
        assert_eq!(c.minutes, (0..60).step_by(15).fold(0, |s, v| s | 1 << v));
        assert_eq!(
            c.hours,
            [8, 10, 12, 14, 16, 18].iter().fold(0, |s, v| s | 1 << v)
        );
        assert_eq!(c.months, (1 << 1) | (1 << 7) | (1 << 8));
        assert_eq!(c.days_of_week, (1..=5).fold(0, |s, v| s | 1 << v));
        // N/STEP runs to the maximum.
        let c = Cron::parse("5/20 * * * *", 0).unwrap();
        assert_eq!(c.minutes, (1 << 5) | (1 << 25) | (1 << 45));
        assert_eq!(c.text(), "5/20 * * * *");
    }

    #[test]
    fn a_fixed_offset_shifts_the_fire_times() {
        // 02:00 at UTC+08:00 is 18:00 UTC the day before.
        let c = Cron::parse("0 2 * * *", 8 * 60).unwrap();
        assert_eq!(
            c.next_after(at(2026, 12, 4, 12, 0)),
            Some(at(2026, 12, 4, 18, 0))
        );
        // Day boundaries follow the offset: Monday 01:00 at UTC-05:00 is Monday 06:00 UTC.
        let c = Cron::parse("0 1 * * MON", -5 * 60).unwrap();
        assert_eq!(
            c.next_after(at(2026, 12, 1, 0, 0)),
            Some(at(2026, 12, 7, 6, 0))
        );
        assert_eq!(parse_offset("UTC").unwrap(), 0);
        assert_eq!(parse_offset("+08:00").unwrap(), 480);
        assert_eq!(parse_offset("UTC-05:30").unwrap(), -330);
        assert_eq!(parse_offset("-0530").unwrap(), -330);
        assert_eq!(parse_offset("+8").unwrap(), 480);
        for bad in ["Europe/Paris", "+15:00", "+08:60", "8", "+"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
        assert_eq!(format_offset(-330), "UTC-05:30");
        assert_eq!(format_offset(0), "UTC");
    }

    #[test]
    fn errors_name_the_field_and_the_value() {
        let cases = [
            ("0 25 * * *", "hour field '25': 25 is outside 0-23"),
            ("60 * * * *", "minute field '60'"),
            ("0 0 0 * *", "day-of-month field '0': 0 is outside 1-31"),
            ("0 0 * 13 *", "month field '13'"),
            ("0 0 * FOO *", "'FOO' is neither a number nor one of JAN"),
            ("0 0 * * 8", "day-of-week field '8'"),
            ("*/0 * * * *", "step 0"),
            ("0 5-2 * * *", "range '5-2' goes backwards"),
            ("0 1,,2 * * *", "empty list item"),
            ("0 2 * *", "has 4 fields"),
            ("0 0 30 FEB *", "never fires"),
            ("x * * * *", "minute field 'x': 'x' is not a number"),
        ];
        for (expr, want) in cases {
            let e = Cron::parse(expr, 0).unwrap_err().to_string();
            assert!(e.contains(want), "{expr}: {e}");
        }
        assert!(Cron::parse(&"1,".repeat(150), 0).is_err());
        assert!(Cron::parse("* * * * *", 15 * 60).is_err());
    }

    #[test]
    fn store_times_round_trip() {
        for t in [0, at(2026, 12, 4, 2, 0), at(2028, 2, 29, 23, 59) + 59] {
            assert_eq!(parse_store_time(&store_time(t)), Some(t));
        }
        assert_eq!(parse_store_time("2026-12-04"), None);
    }

    /// SplitMix64: a seeded generator small enough to keep the property test self-contained.
    struct Seeded(u64);

    impl Seeded {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform enough in `lo..=hi` for a test.
        fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next() % (hi - lo + 1) as u64) as i64
        }
    }

    /// A random field: `*`, a value, a range, a step or a list of those.
    fn random_field(rng: &mut Seeded, min: i64, max: i64) -> String {
        let n = rng.range(1, 2);
        (0..n)
            .map(|_| {
                let a = rng.range(min, max);
                let b = rng.range(a, max);
                match rng.range(0, 4) {
                    0 => "*".to_string(),
                    1 => a.to_string(),
                    2 => format!("{a}-{b}"),
                    3 => format!("*/{}", rng.range(1, max)),
                    _ => format!("{a}-{b}/{}", rng.range(1, 3)),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Property: `next_after` equals the first matching minute found by scanning minute by
    /// minute, for seeded random expressions, offsets and start times (1 year of scan).
    #[test]
    fn next_fire_equals_a_minute_by_minute_scan() {
        let mut rng = Seeded(20261204);
        let mut checked = 0;
        while checked < 60 {
            let expr = [
                random_field(&mut rng, 0, 59),
                random_field(&mut rng, 0, 23),
                random_field(&mut rng, 1, 31),
                random_field(&mut rng, 1, 12),
                random_field(&mut rng, 0, 7),
            ]
            .join(" ");
            let offset = rng.range(-14 * 4, 14 * 4) as i32 * 15;
            let Ok(cron) = Cron::parse(&expr, offset) else {
                continue; // never fires
            };
            // Start anywhere in 1999-2101 (leap days and the non-leap 2100 included).
            let from = rng.range(at(1999, 1, 1, 0, 0), at(2101, 1, 1, 0, 0)) + rng.range(0, 59);
            let got = cron.next_after(from);
            let mut t = from.div_euclid(60) * 60 + 60;
            let limit = t + 366 * 86_400;
            while t < limit && !cron.matches(t) {
                t += 60;
            }
            if t < limit {
                assert_eq!(
                    got,
                    Some(t),
                    "{expr} at {offset} min after {}",
                    store_time(from)
                );
            } else {
                assert!(got.is_none_or(|g| g >= limit), "{expr}: {got:?}");
            }
            checked += 1;
        }
    }
}
