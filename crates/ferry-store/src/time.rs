//! UTC timestamps as ISO-8601 text (`2024-05-01T12:34:56.789Z`): fixed width, so text order is
//! time order in SQLite and PostgreSQL alike, and no timezone database is needed.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time, e.g. `2024-05-01T12:34:56.789Z`.
pub fn now_utc() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_unix_millis(since_epoch.as_millis() as i64)
}

/// Formats milliseconds since 1970-01-01T00:00:00Z (years 0000-9999; later instants are clamped).
pub fn format_unix_millis(millis: i64) -> String {
    // 9999-12-31T23:59:59.999Z; keeps the text fixed-width.
    let millis = millis.clamp(-62_167_219_200_000, 253_402_300_799_999);
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01, computed in 400-year eras
/// (146,097 days each) with the year starting on 1 March so the leap day falls last.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days from 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_unix_millis(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a year divisible by 400) and the day after.
        assert_eq!(
            format_unix_millis(951_868_800_000 - 86_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_unix_millis(951_868_800_000),
            "2000-03-01T00:00:00.000Z"
        );
        assert_eq!(
            format_unix_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        // 2100 is not a leap year.
        assert_eq!(
            format_unix_millis(4_107_542_400_000),
            "2100-03-01T00:00:00.000Z"
        );
        assert_eq!(format_unix_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn text_order_is_time_order() {
        let mut stamps: Vec<i64> = vec![0, 1, 999, 1000, 86_399_999, 86_400_000, 1_700_000_000_000];
        stamps.sort();
        let texts: Vec<String> = stamps.iter().map(|&m| format_unix_millis(m)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
    }
}
