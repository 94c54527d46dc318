//! A bidirectional copy between a client and an upstream connection, for a TCP proxy.
//!
//! Each direction reads into its own buffer and writes all of it before reading again, so a
//! slow reader on one side holds the other side's sender back through TCP flow control rather
//! than through memory here. An end of file on one side is passed on as a half close
//! (`shutdown` of the other side's write half) and the other direction goes on. Both directions
//! share one idle clock: when neither moved a byte for `idle`, the copy ends.

use std::cell::Cell;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

/// Bytes a direction reads at a time.
pub const CHUNK: usize = 16 << 10;

/// What a copy moved, and how it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Bytes from the client to the upstream.
    pub up: u64,
    /// Bytes from the upstream to the client.
    pub down: u64,
    /// Ended by the idle timeout.
    pub idle: bool,
}

async fn one_way<R: AsyncReadRent, W: AsyncWriteRent>(
    r: &mut R,
    w: &mut W,
    moved: &Cell<u64>,
    last: &Cell<Instant>,
) {
    let mut buf = Vec::with_capacity(CHUNK);
    loop {
        buf.clear();
        let (res, b) = r.read(buf).await;
        buf = b;
        match res {
            Ok(n) if n > 0 => {}
            // End of file or a reset: tell the other side we are done writing.
            _ => break,
        }
        last.set(Instant::now());
        let n = buf.len() as u64;
        let (res, b) = w.write_all(buf).await;
        buf = b;
        if res.is_err() {
            break;
        }
        moved.set(moved.get() + n);
        last.set(Instant::now());
    }
    let _ = w.shutdown().await;
}

/// Copies client → upstream and upstream → client until both directions ended or nothing moved
/// for `idle`.
pub async fn bidirectional<CR, CW, UR, UW>(
    client_r: &mut CR,
    client_w: &mut CW,
    up_r: &mut UR,
    up_w: &mut UW,
    idle: Duration,
) -> Copied
where
    CR: AsyncReadRent,
    CW: AsyncWriteRent,
    UR: AsyncReadRent,
    UW: AsyncWriteRent,
{
    let up = Cell::new(0);
    let down = Cell::new(0);
    let last = Cell::new(Instant::now());
    let both = async {
        monoio::join!(
            one_way(client_r, up_w, &up, &last),
            one_way(up_r, client_w, &down, &last)
        )
    };
    let watchdog = async {
        loop {
            let due = last.get() + idle;
            let now = Instant::now();
            if now >= due {
                return;
            }
            monoio::time::sleep(due - now).await;
        }
    };
    let idle_hit = monoio::select! {
        _ = both => false,
        _ = watchdog => true,
    };
    Copied {
        up: up.get(),
        down: down.get(),
        idle: idle_hit,
    }
}
