//! Windows of time a limit counts in: fixed, aligned to the Unix epoch (seconds, minutes, hours,
//! days, any whole number of seconds) or to the calendar (months, UTC). Aligned windows are the
//! same on every host with a synchronised clock, which is what lets processes share a window's
//! counter in Redis.

use std::time::{SystemTime, UNIX_EPOCH};

use weir_config::quota::Window;

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `[start, end)` in seconds since the epoch of the window holding `secs`.
pub fn bounds(w: Window, secs: u64) -> (u64, u64) {
    match w.seconds() {
        Some(len) => {
            let start = secs - secs % len;
            (start, start + len)
        }
        None => {
            let (y, m, _) = civil_from_days((secs / 86_400) as i64);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (
                days_from_civil(y, m, 1) as u64 * 86_400,
                days_from_civil(ny, nm, 1) as u64 * 86_400,
            )
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A duration as OpenAI writes it in `x-ratelimit-reset-*`: `250ms`, `12s`, `6m0s`, `1h2m3s`.
pub fn go_duration(ms: u64, out: &mut Vec<u8>) {
    let mut b = itoa::Buffer::new();
    if ms < 1000 {
        out.extend_from_slice(b.format(ms).as_bytes());
        out.extend_from_slice(b"ms");
        return;
    }
    // Whole seconds, rounded up: a client that waits this long finds the window turned.
    let s = ms.div_ceil(1000);
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        out.extend_from_slice(b.format(h).as_bytes());
        out.push(b'h');
    }
    if h > 0 || m > 0 {
        out.extend_from_slice(b.format(m).as_bytes());
        out.push(b'm');
    }
    out.extend_from_slice(b.format(s).as_bytes());
    out.push(b's');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_windows_align_to_the_epoch() {
        assert_eq!(bounds(Window::Second, 100), (100, 101));
        assert_eq!(bounds(Window::Minute, 125), (120, 180));
        assert_eq!(bounds(Window::Every(10), 125), (120, 130));
        assert_eq!(bounds(Window::Hour, 7300), (7200, 10_800));
        assert_eq!(
            bounds(Window::Day, 86_400 * 3 + 5),
            (86_400 * 3, 86_400 * 4)
        );
    }

    #[test]
    fn months_follow_the_calendar() {
        // 2024-02-29 12:00 UTC: February of a leap year.
        let t = days_from_civil(2024, 2, 29) as u64 * 86_400 + 43_200;
        let (s, e) = bounds(Window::Month, t);
        assert_eq!(s, days_from_civil(2024, 2, 1) as u64 * 86_400);
        assert_eq!((e - s) / 86_400, 29);
        // December turns into January of the next year.
        let t = days_from_civil(2025, 12, 31) as u64 * 86_400 + 86_399;
        let (s, e) = bounds(Window::Month, t);
        assert_eq!(civil_from_days((s / 86_400) as i64), (2025, 12, 1));
        assert_eq!(civil_from_days((e / 86_400) as i64), (2026, 1, 1));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        for z in [-1000, 0, 59, 60, 365, 10_957, 20_000, 50_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn durations_in_openai_form() {
        let f = |ms| {
            let mut v = Vec::new();
            go_duration(ms, &mut v);
            String::from_utf8(v).expect("ascii")
        };
        assert_eq!(f(250), "250ms");
        assert_eq!(f(1000), "1s");
        assert_eq!(f(1001), "2s");
        assert_eq!(f(360_000), "6m0s");
        assert_eq!(f(3_723_000), "1h2m3s");
    }
}
