//! The plane link: after `101 Switching Protocols`, one data plane's NDJSON frames
//! (`weir_protocol`).
//!
//! Two threads per plane. The reader takes `Ack`/`Nack`/`Pong` frames and records them in the shared
//! state. The writer (the connection's own thread) sleeps on the state's condition variable and
//! wakes to push the current generation when it differs from the last one sent, to send a `Ping`
//! every `ping_interval`, or to drop a plane silent for `ping_timeout`. Generations accepted in quick
//! succession are coalesced: a plane always receives the newest, never a stale one after it.

use std::io::{BufReader, Chain, Cursor, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_protocol::{read_frame, write_frame, DaemonMessage, PlaneMessage};

use crate::http::Conn;
use crate::state::{Answer, Shared};

/// Longest NACK reason kept.
const MAX_REASON: usize = 2000;

/// Liveness settings of the link.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A `Ping` is sent this often.
    pub ping_interval: Duration,
    /// A plane that sent nothing for this long is dropped (also the time allowed for `Hello`).
    pub ping_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(30),
        }
    }
}

type FrameReader = BufReader<Chain<Cursor<Vec<u8>>, UnixStream>>;

/// Serves an attached plane until its link goes down.
pub fn serve(conn: Conn<UnixStream>, shared: &Arc<Shared>, timing: Timing) {
    let Conn { mut stream, buf } = conn;
    if stream
        .write_all(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {}\r\nConnection: upgrade\r\n\r\n",
                weir_protocol::UPGRADE
            )
            .as_bytes(),
        )
        .is_err()
    {
        return;
    }
    let read_half = match stream.try_clone() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "plane link: cannot clone the socket");
            return;
        }
    };
    let _ = read_half.set_read_timeout(Some(timing.ping_timeout));
    // Frames the plane sent right behind its request are already in `buf`.
    let mut reader: FrameReader = BufReader::new(Cursor::new(buf).chain(read_half));
    let (plane_id, pid, version, generation) = match read_frame(&mut reader) {
        Ok(PlaneMessage::Hello {
            plane_id,
            pid,
            version,
            generation,
        }) => (plane_id, pid, version, generation),
        Ok(other) => {
            tracing::warn!(frame = ?other, "plane link: the first frame must be hello");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "plane link: no hello");
            return;
        }
    };
    // From now on liveness is judged by the pings, not by a read timeout.
    let _ = reader.get_ref().get_ref().1.set_read_timeout(None);
    tracing::info!(plane = %plane_id, pid, version = %version, generation, "plane attached");
    let conn_id = shared.attach(plane_id, pid, version, generation);

    let reader_shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("plane-read-{conn_id}"))
        .spawn(move || read_loop(&reader_shared, conn_id, reader));
    if let Err(e) = spawned {
        shared.detach(conn_id, &format!("cannot start a reader thread: {e}"));
        return;
    }
    let reason = write_loop(shared, conn_id, &mut stream, generation, timing);
    shared.detach(conn_id, &reason);
    // Wakes the reader (its read returns 0) if it is still blocked.
    let _ = stream.shutdown(Shutdown::Both);
}

fn read_loop(shared: &Shared, conn: u64, mut reader: FrameReader) {
    let reason = loop {
        let frame: PlaneMessage = match read_frame(&mut reader) {
            Ok(f) => f,
            Err(weir_protocol::Error::Closed) => break "the plane closed the link".to_string(),
            Err(e) => break format!("link error: {e}"),
        };
        shared.update_plane(conn, |p| {
            p.last_seen = Instant::now();
            match frame {
                PlaneMessage::Ack { generation } => {
                    tracing::info!(plane = %p.plane_id, generation, "plane ack");
                    p.generation = generation;
                    p.last_result = Some(Answer::Ack);
                    p.last_result_generation = Some(generation);
                    p.last_reason = None;
                }
                PlaneMessage::Nack { generation, reason } => {
                    let reason: String = reason.chars().take(MAX_REASON).collect();
                    tracing::warn!(plane = %p.plane_id, generation, reason = %reason, "plane nack");
                    p.last_result = Some(Answer::Nack);
                    p.last_result_generation = Some(generation);
                    p.last_reason = Some(reason);
                }
                PlaneMessage::Pong => {}
                PlaneMessage::Hello { .. } => {
                    tracing::warn!(plane = %p.plane_id, "plane link: second hello ignored");
                }
            }
        });
    };
    shared.detach(conn, &reason);
    if let Ok(s) = reader.get_ref().get_ref().1.try_clone() {
        let _ = s.shutdown(Shutdown::Both);
    }
}

enum Next {
    Send(Arc<crate::store::Generation>),
    Ping,
    Stop(String),
}

/// Pushes generations and pings until the link goes down; returns why it did.
fn write_loop(
    shared: &Shared,
    conn: u64,
    stream: &mut UnixStream,
    hello_generation: u64,
    timing: Timing,
) -> String {
    let _ = stream.set_write_timeout(Some(timing.ping_timeout));
    let mut sent = hello_generation;
    let mut next_ping = Instant::now() + timing.ping_interval;
    loop {
        let next = {
            let mut st = shared.lock();
            loop {
                let Some(p) = st.planes.iter().find(|p| p.conn == conn) else {
                    break Next::Stop("forgotten".into());
                };
                if !p.connected {
                    break Next::Stop(p.disconnect_reason.clone().unwrap_or_default());
                }
                let silent_until = p.last_seen + timing.ping_timeout;
                let now = Instant::now();
                if now >= silent_until {
                    break Next::Stop(format!(
                        "no answer for {}s",
                        timing.ping_timeout.as_secs_f64()
                    ));
                }
                if st.current.meta.generation != sent {
                    break Next::Send(st.current.clone());
                }
                if now >= next_ping {
                    break Next::Ping;
                }
                let wake = next_ping.min(silent_until);
                st = shared.wait(st, wake - now);
            }
        };
        let written = match next {
            Next::Stop(reason) => return reason,
            Next::Ping => {
                next_ping = Instant::now() + timing.ping_interval;
                write_frame(stream, &DaemonMessage::Ping)
            }
            Next::Send(g) => {
                let n = g.meta.generation;
                let mut config = (*g.config).clone();
                // Plugins travel as bytes with their hash, read now (the data plane may run
                // where the daemon's files are not).
                if let Err(e) = weir_config::plugin::embed_modules(&mut config) {
                    tracing::warn!(generation = n, conn, error = %e, "plugin module not embedded");
                }
                let msg = DaemonMessage::Snapshot {
                    generation: n,
                    config: Box::new(config),
                };
                let r = write_frame(stream, &msg);
                if r.is_ok() {
                    tracing::info!(generation = n, conn, "snapshot sent");
                    sent = n;
                    shared.update_plane(conn, |p| p.last_generation_sent = Some(n));
                }
                r
            }
        };
        if let Err(e) = written {
            return format!("cannot write to the plane: {e}");
        }
    }
}
