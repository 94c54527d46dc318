use super::*;
use crate::testing::{continued, ctx, refused, request};

fn acl(allow: &[&str], deny: &[&str]) -> IpAclFactory {
    let s = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    IpAclFactory::new(&s(allow), &s(deny)).expect("builds")
}

/// Runs the filter for a client at `addr` (`ip:port`): whether it passed.
fn passes(f: &IpAclFactory, addr: &str) -> bool {
    let mut req = request("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = f.create().on_request_headers(&mut ctx(addr), &mut req);
    if continued(&r) {
        return true;
    }
    let e = refused(r);
    assert_eq!(
        (e.status, e.kind, e.side),
        (403, "ip_denied", Side::Downstream)
    );
    false
}

#[test]
fn empty_lists_admit_everyone() {
    let f = acl(&[], &[]);
    assert!(passes(&f, "203.0.113.9:5000"));
    assert!(passes(&f, "[2001:db8::1]:5000"));
}

#[test]
fn allow_list_admits_only_its_members() {
    let f = acl(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"], &[]);
    assert!(passes(&f, "10.200.3.4:1"));
    assert!(passes(&f, "192.168.1.7:1"));
    assert!(!passes(&f, "192.168.1.8:1"));
    assert!(!passes(&f, "11.0.0.1:1"));
    assert!(passes(&f, "[2001:db8:ffff::1]:1"));
    assert!(!passes(&f, "[2001:db9::1]:1"));
}

#[test]
fn deny_wins_over_allow() {
    let f = acl(&["10.0.0.0/8"], &["10.6.0.0/16", "10.9.9.9"]);
    assert!(passes(&f, "10.5.255.255:1"));
    assert!(!passes(&f, "10.6.0.0:1"));
    assert!(!passes(&f, "10.6.255.255:1"));
    assert!(passes(&f, "10.7.0.0:1"));
    assert!(!passes(&f, "10.9.9.9:1"));
    assert!(passes(&f, "10.9.9.10:1"));
    // Deny only: everyone else passes.
    let f = acl(&[], &["203.0.113.0/24"]);
    assert!(!passes(&f, "203.0.113.77:1"));
    assert!(passes(&f, "198.51.100.1:1"));
}

#[test]
fn ipv4_mapped_clients_and_entries_are_ipv4() {
    let f = acl(&["10.0.0.0/8"], &[]);
    assert!(passes(&f, "[::ffff:10.1.2.3]:1"));
    assert!(!passes(&f, "[::ffff:11.1.2.3]:1"));
    let f = acl(&[], &["::ffff:10.0.0.0/104", "::ffff:1.2.3.4"]);
    assert!(!passes(&f, "10.3.3.3:1"));
    assert!(!passes(&f, "1.2.3.4:1"));
    assert!(!passes(&f, "[::ffff:1.2.3.4]:1"));
    assert!(passes(&f, "1.2.3.5:1"));
}

#[test]
fn plain_addresses_are_single_hosts() {
    let f = acl(&["127.0.0.1", "::1"], &[]);
    assert!(passes(&f, "127.0.0.1:1"));
    assert!(!passes(&f, "127.0.0.2:1"));
    assert!(passes(&f, "[::1]:1"));
    assert!(!passes(&f, "[::2]:1"));
}

#[test]
fn overlapping_and_adjacent_entries_merge() {
    let f = acl(
        &[
            "10.0.1.0/24",
            "10.0.0.0/24",
            "10.0.0.128/25",
            "0.0.0.0/32",
            "255.255.255.255",
            "10.1.2.3/8",
        ],
        &[],
    );
    assert_eq!(
        &f.acl.allow.v4[..],
        &[
            (0, 0),
            (
                u32::from_be_bytes([10, 0, 0, 0]),
                u32::from_be_bytes([10, 255, 255, 255])
            ),
            (u32::MAX, u32::MAX),
        ]
    );
    let f = acl(&["1.0.0.0/24", "1.0.1.0/24", "1.0.3.0/24"], &[]);
    assert_eq!(f.acl.allow.v4.len(), 2);
    assert!(passes(&f, "1.0.1.255:1"));
    assert!(!passes(&f, "1.0.2.0:1"));
    assert!(passes(&f, "1.0.3.0:1"));
    assert!(!passes(&f, "0.255.255.255:1"));
    let f = acl(&["::/0"], &[]);
    assert!(passes(&f, "[ffff::1]:1"));
    assert!(!passes(&f, "1.1.1.1:1"));
}

#[test]
fn bad_entries_are_refused() {
    for bad in ["10.0.0.0/33", "not-an-ip", "", "10.0.0", "2001:db8::/129"] {
        let e = IpAclFactory::new(&[bad.to_string()], &[]).err();
        assert_eq!(e, Some(Error::Cidr(bad.to_string())), "{bad}");
        let e = IpAclFactory::new(&[], &[bad.to_string()]).err();
        assert_eq!(e, Some(Error::Cidr(bad.to_string())), "{bad}");
    }
}
