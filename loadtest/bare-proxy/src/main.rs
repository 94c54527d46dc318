//! `weir-bare-proxy`: the floor row of the load harness. One monoio thread, one upstream
//! connection per client connection, bytes copied both ways as they come: no HTTP parsing, no
//! routing, no pools, no metrics. Whatever Weir costs per request above this is the price of its
//! features; the kernel's loopback TCP work, which dominates, is the same for both.
//!
//! `weir-bare-proxy LISTEN UPSTREAM uring|epoll` (e.g. `127.0.0.1:10003 127.0.0.1:18080 epoll`).
//! The io_uring runtime is set up like Weir's (`COOP_TASKRUN | TASKRUN_FLAG`), so the two rows
//! compare like with like.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use anyhow::{bail, Context};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use monoio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: weir_alloc::WeirAlloc = weir_alloc::WeirAlloc;

async fn copy(mut from: impl AsyncReadRent, mut to: impl AsyncWriteRentExt) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    loop {
        let cap = buf.capacity();
        let (r, slice) = from.read(buf.slice_mut(0..cap)).await;
        buf = slice.into_inner();
        match r {
            Ok(n) if n > 0 => {}
            _ => return,
        }
        let (w, b) = to.write_all(buf).await;
        buf = b;
        if w.is_err() {
            return;
        }
        buf.clear();
    }
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) {
    let listener = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bind {listen}: {e}");
            std::process::exit(1);
        }
    };
    println!("listening {listen}");
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        monoio::spawn(async move {
            let Ok(up) = TcpStream::connect_addr(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = up.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (ur, uw) = up.into_split();
            monoio::select! {
                _ = copy(cr, uw) => {},
                _ = copy(ur, cw) => {},
            }
        });
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        bail!("usage: weir-bare-proxy LISTEN UPSTREAM uring|epoll");
    }
    let listen: SocketAddr = args[1].parse().context("LISTEN")?;
    let upstream: SocketAddr = args[2].parse().context("UPSTREAM")?;
    match args[3].as_str() {
        "uring" => {
            let mut urb = io_uring::IoUring::builder();
            urb.setup_coop_taskrun().setup_taskrun_flag();
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .uring_builder(urb)
                .with_entries(4096)
                .enable_timer()
                .build()?
                .block_on(serve(listen, upstream));
        }
        "epoll" => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .with_entries(4096)
            .enable_timer()
            .build()?
            .block_on(serve(listen, upstream)),
        other => bail!("driver `{other}`: use uring or epoll"),
    }
    Ok(())
}
