use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn v1_tcp4_and_tcp6() {
    let buf = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
    let (h, n) = parse(buf).unwrap().unwrap();
    assert_eq!(&buf[n..], b"GET / HTTP/1.1\r\n");
    assert_eq!(
        h.addresses,
        Some((addr("192.0.2.1:56324"), addr("198.51.100.2:443")))
    );
    assert_eq!(h.version, 1);
    let buf = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
    let (h, n) = parse(buf).unwrap().unwrap();
    assert_eq!(n, buf.len());
    assert_eq!(
        h.addresses,
        Some((addr("[2001:db8::1]:1"), addr("[2001:db8::2]:65535")))
    );
    let (h, _) = parse(b"PROXY UNKNOWN ignored stuff\r\n").unwrap().unwrap();
    assert_eq!(h.addresses, None);
}

#[test]
fn v1_needs_more_then_completes() {
    let full = b"PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\n";
    for cut in 1..full.len() {
        assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
    }
    assert!(parse(full).unwrap().is_some());
}

#[test]
fn v1_refuses_what_is_not_one() {
    for bad in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"PROXZ TCP4",
        b"PROXY TCP4 10.0.0.1 10.0.0.2 1000\r\n",
        b"PROXY TCP4 10.0.0.1 10.0.0.2 1000 80 9\r\n",
        b"PROXY TCP4 ::1 10.0.0.2 1000 80\r\n",
        b"PROXY TCP6 10.0.0.1 ::1 1000 80\r\n",
        b"PROXY TCP4 10.0.0.1 10.0.0.2 01000 80\r\n",
        b"PROXY TCP4 10.0.0.1 10.0.0.2 +1000 80\r\n",
        b"PROXY TCP4 10.0.0.1 10.0.0.2 65536 80\r\n",
        b"PROXY UDP4 10.0.0.1 10.0.0.2 1 2\r\n",
        b"PROXY TCP4  10.0.0.1 10.0.0.2 1 2\r\n",
    ] {
        assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    // No CRLF within the longest line.
    let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
    assert!(parse(&long).is_err());
}

#[test]
fn v2_round_trips_and_ignores_tlvs() {
    for (src, dst) in [
        ("192.0.2.1:5000", "198.51.100.2:443"),
        ("[2001:db8::1]:5000", "[2001:db8::2]:443"),
    ] {
        let (src, dst) = (addr(src), addr(dst));
        let mut buf = encode(2, src, dst);
        let len = buf.len();
        let (h, n) = parse(&buf).unwrap().unwrap();
        assert_eq!((h.addresses, h.version, n), (Some((src, dst)), 2, len));
        // A TLV after the addresses (length grows by its 5 bytes) is skipped.
        let body = u16::from_be_bytes([buf[14], buf[15]]) + 5;
        buf[14..16].copy_from_slice(&body.to_be_bytes());
        buf.extend_from_slice(&[0x04, 0x00, 0x02, 0xab, 0xcd]);
        buf.extend_from_slice(b"rest");
        let (h, n) = parse(&buf).unwrap().unwrap();
        assert_eq!(h.addresses, Some((src, dst)));
        assert_eq!(&buf[n..], b"rest");
        for cut in 1..n {
            assert_eq!(parse(&buf[..cut]), Ok(None), "cut at {cut}");
        }
    }
}

#[test]
fn v2_local_unspec_and_refusals() {
    let mut local = V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    assert_eq!(parse(&local).unwrap().unwrap().0.addresses, None);
    let mut unspec = V2_SIGNATURE.to_vec();
    unspec.extend_from_slice(&[0x21, 0x00, 0x00, 0x00]);
    assert_eq!(parse(&unspec).unwrap().unwrap().0.addresses, None);
    let with = |ver_cmd: u8, fam: u8, body: &[u8]| {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(ver_cmd);
        b.push(fam);
        b.extend_from_slice(&(body.len() as u16).to_be_bytes());
        b.extend_from_slice(body);
        b
    };
    assert!(
        parse(&with(0x11, 0x11, &[0; 12])).is_err(),
        "version 1 in v2"
    );
    assert!(parse(&with(0x22, 0x11, &[0; 12])).is_err(), "command 2");
    assert!(parse(&with(0x21, 0x11, &[0; 8])).is_err(), "short IPv4");
    assert!(parse(&with(0x21, 0x21, &[0; 20])).is_err(), "short IPv6");
    assert!(parse(&with(0x21, 0x12, &[0; 12])).is_err(), "UDP");
    assert!(parse(&with(0x21, 0x31, &[0; 216])).is_err(), "unix");
    let mut huge = V2_SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    assert!(parse(&huge).is_err(), "over 4 KiB");
    let mut not_sig = V2_SIGNATURE.to_vec();
    not_sig[5] = b'x';
    assert_eq!(parse(&not_sig), Err(Error::Missing));
}

#[test]
fn v1_encode_and_mixed_families() {
    let h = encode(1, addr("192.0.2.1:5000"), addr("198.51.100.2:443"));
    assert_eq!(h, b"PROXY TCP4 192.0.2.1 198.51.100.2 5000 443\r\n");
    let h = encode(1, addr("192.0.2.1:5000"), addr("[::1]:443"));
    assert_eq!(h, b"PROXY TCP6 ::ffff:192.0.2.1 ::1 5000 443\r\n");
    let (p, _) = parse(&h).unwrap().unwrap();
    assert_eq!(p.addresses.unwrap().1, addr("[::1]:443"));
    let h = encode(2, addr("192.0.2.1:5000"), addr("[::1]:443"));
    let (p, _) = parse(&h).unwrap().unwrap();
    assert_eq!(p.addresses.unwrap().0, addr("[::ffff:192.0.2.1]:5000"));
}

#[test]
fn local_headers_declare_no_client() {
    let h = encode_local(1);
    assert_eq!(h, b"PROXY UNKNOWN\r\n");
    assert_eq!(
        parse(&h),
        Ok(Some((
            Header {
                addresses: None,
                version: 1
            },
            h.len()
        )))
    );
    let mut h = encode_local(2);
    assert_eq!(h.len(), 16);
    assert_eq!(h[12], 0x20, "version 2, LOCAL");
    h.extend_from_slice(b"GET");
    let (p, n) = parse(&h).unwrap().unwrap();
    assert_eq!((p.addresses, p.version, &h[n..]), (None, 2, &b"GET"[..]));
}
