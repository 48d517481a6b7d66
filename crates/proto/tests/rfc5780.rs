//! RFC 5780 NAT behaviour discovery in the Binding service: OTHER-ADDRESS and
//! RESPONSE-ORIGIN, CHANGE-REQUEST (Table 1), RESPONSE-PORT, PADDING, the 400s and 420s,
//! and the bounds that keep it from reflecting or amplifying traffic. Driven with bytes
//! through `BindingService::handle_tuple`, and through `TurnServer::handle_client` for
//! `ClientAction::ReplyFrom`.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use common::{Outcome, Sim, sa, udp};
use turnpike_proto::binding::{
    BindingConfig, BindingService, Ignored, RESPONSE_OVERHEAD, Response, Rfc5780Addresses,
    Rfc5780Error,
};
use turnpike_proto::{ClientTransport, Family, FiveTuple};
use turnpike_stun::attr::{
    ChangeRequest, ErrorCodeAttr, MappedAddress, OtherAddress, Padding, ResponseOrigin,
    ResponsePort, Software, UnknownAttributes, XorMappedAddress,
};
use turnpike_stun::{AttrType, ErrorCode, Message, MessageType, MessageWriter, TransactionId};

const TID: TransactionId = TransactionId([7; 12]);
const P1: u16 = 3478;
const P2: u16 = 3479;

fn v4_pair() -> (Ipv4Addr, Ipv4Addr) {
    (
        "198.51.100.1".parse().unwrap(),
        "198.51.100.2".parse().unwrap(),
    )
}

fn v6_pair() -> (Ipv6Addr, Ipv6Addr) {
    (
        "2001:db8::10".parse().unwrap(),
        "2001:db8::20".parse().unwrap(),
    )
}

/// Both families, ports 3478/3479, datagrams only.
fn addrs() -> Rfc5780Addresses {
    Rfc5780Addresses {
        primary_port: P1,
        alternate_port: P2,
        v4: Some(v4_pair()),
        v6: Some(v6_pair()),
        streams: false,
    }
}

fn service(rfc5780: Option<Rfc5780Addresses>) -> BindingService {
    BindingService::new(BindingConfig {
        software: None,
        rfc5780,
    })
}

fn on() -> BindingService {
    service(Some(addrs()))
}

/// The client of a family.
fn client_of(family: Family) -> SocketAddr {
    match family {
        Family::V4 => sa("203.0.113.7:40000"),
        Family::V6 => sa("[2001:db8:ffff::7]:40000"),
    }
}

/// A1:P1, A1:P2, A2:P1, A2:P2 of a family.
fn four(family: Family) -> [SocketAddr; 4] {
    let (a1, a2): (std::net::IpAddr, std::net::IpAddr) = match family {
        Family::V4 => (v4_pair().0.into(), v4_pair().1.into()),
        Family::V6 => (v6_pair().0.into(), v6_pair().1.into()),
    };
    [
        SocketAddr::new(a1, P1),
        SocketAddr::new(a1, P2),
        SocketAddr::new(a2, P1),
        SocketAddr::new(a2, P2),
    ]
}

/// The address that differs from `local` in both IP and port.
fn opposite(local: SocketAddr) -> SocketAddr {
    let [a1p1, a1p2, a2p1, a2p2] = four(if local.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    });
    match local {
        l if l == a1p1 => a2p2,
        l if l == a1p2 => a2p1,
        l if l == a2p1 => a1p2,
        l if l == a2p2 => a1p1,
        other => panic!("{other} is not in the set"),
    }
}

fn tuple(client: SocketAddr, server: SocketAddr, transport: ClientTransport) -> FiveTuple {
    FiveTuple {
        client,
        server,
        transport,
    }
}

/// What a request may carry.
#[derive(Default, Clone, Copy)]
struct Req<'a> {
    change: Option<ChangeRequest>,
    port: Option<u16>,
    padding: Option<usize>,
    fingerprint: bool,
    raw: &'a [(AttrType, &'a [u8])],
}

fn binding_request(r: Req<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    let mut w = MessageWriter::new(&mut buf, MessageType::BINDING_REQUEST, TID).unwrap();
    if let Some(c) = r.change {
        w.put(&c).unwrap();
    }
    if let Some(p) = r.port {
        w.put(&ResponsePort(p)).unwrap();
    }
    if let Some(n) = r.padding {
        w.put_raw(AttrType::PADDING, &vec![0xAB; n]).unwrap();
    }
    for (t, v) in r.raw {
        w.put_raw(*t, v).unwrap();
    }
    if r.fingerprint {
        w.put_fingerprint().unwrap();
    }
    let n = w.finish();
    buf.truncate(n);
    buf
}

fn change(change_ip: bool, change_port: bool) -> ChangeRequest {
    ChangeRequest {
        change_ip,
        change_port,
    }
}

/// A response, where it leaves from and where it goes (`None`: back as it came).
#[derive(Debug)]
struct Sent {
    bytes: Vec<u8>,
    from_to: Option<(SocketAddr, SocketAddr)>,
}

impl Sent {
    fn msg(&self) -> Message<&[u8]> {
        Message::new_checked(&self.bytes[..]).expect("a valid STUN message")
    }

    fn error_code(&self) -> Option<u16> {
        self.msg()
            .get::<ErrorCodeAttr>()
            .unwrap()
            .map(|e| e.code.code())
    }

    fn origin(&self) -> Option<SocketAddr> {
        self.msg().get::<ResponseOrigin>().unwrap().map(|a| a.0)
    }

    fn other(&self) -> Option<SocketAddr> {
        self.msg().get::<OtherAddress>().unwrap().map(|a| a.0)
    }

    fn xor_mapped(&self) -> Option<SocketAddr> {
        self.msg().get::<XorMappedAddress>().unwrap().map(|a| a.0)
    }

    fn mapped(&self) -> Option<SocketAddr> {
        self.msg().get::<MappedAddress>().unwrap().map(|a| a.0)
    }

    fn padding_len(&self) -> Option<usize> {
        self.msg().get::<Padding>().unwrap().map(|p| p.0.len())
    }

    fn unknown(&self) -> Vec<AttrType> {
        self.msg()
            .get::<UnknownAttributes>()
            .unwrap()
            .expect("UNKNOWN-ATTRIBUTES")
            .iter()
            .collect()
    }
}

/// Handles `packet` on the 5-tuple and checks the invariants every answer keeps: a valid
/// STUN message, within `max_response_len`, and a redirected one only ever to the
/// client's own IP, from one of the configured addresses, over UDP.
#[track_caller]
fn answer(svc: &BindingService, config: &BindingConfig, packet: &[u8], ft: FiveTuple) -> Sent {
    try_answer(svc, config, packet, ft).expect("an answer")
}

#[track_caller]
fn try_answer(
    svc: &BindingService,
    config: &BindingConfig,
    packet: &[u8],
    ft: FiveTuple,
) -> Option<Sent> {
    let mut out = vec![0u8; 70_000];
    let sent = match svc.handle_tuple(packet, ft, &mut out) {
        Response::Send(n) => Sent {
            bytes: out[..n].to_vec(),
            from_to: None,
        },
        Response::SendFrom { len, from, to } => {
            assert_eq!(to.ip(), ft.client.ip().to_canonical(), "never another IP");
            let set = config.rfc5780.expect("SendFrom only with RFC 5780 on");
            assert!(set.listen_addresses().contains(&from), "{from} not ours");
            assert!(!ft.transport.is_stream(), "SendFrom on a stream");
            assert!(
                from != ft.server || to != ft.client,
                "SendFrom that changes nothing"
            );
            Sent {
                bytes: out[..len].to_vec(),
                from_to: Some((from, to)),
            }
        }
        Response::Ignore(_) => return None,
    };
    assert!(sent.bytes.len() <= config.max_response_len(packet.len()));
    Message::new_checked(&sent.bytes[..]).expect("a valid STUN message");
    Some(sent)
}

fn on_config() -> BindingConfig {
    BindingConfig {
        software: None,
        rfc5780: Some(addrs()),
    }
}

#[test]
fn other_address_and_response_origin_for_each_of_the_four_local_addresses() {
    let svc = on();
    let config = on_config();
    for family in [Family::V4, Family::V6] {
        let client = client_of(family);
        for local in four(family) {
            let sent = answer(
                &svc,
                &config,
                &binding_request(Req::default()),
                tuple(client, local, ClientTransport::Udp),
            );
            assert_eq!(sent.msg().message_type(), MessageType::BINDING_SUCCESS);
            assert_eq!(sent.msg().transaction_id(), TID);
            assert!(
                sent.from_to.is_none(),
                "a plain request is answered as it came"
            );
            assert_eq!(
                sent.other(),
                Some(opposite(local)),
                "OTHER-ADDRESS on {local}"
            );
            assert_eq!(sent.origin(), Some(local), "RESPONSE-ORIGIN on {local}");
            // §6.1: "MUST include both MAPPED-ADDRESS and XOR-MAPPED-ADDRESS".
            assert_eq!(sent.xor_mapped(), Some(client));
            assert_eq!(sent.mapped(), Some(client));
            assert_eq!(sent.padding_len(), None);
            // The helpers the runtime may use agree.
            assert!(addrs().contains(local));
            assert_eq!(addrs().other_address(local), Some(opposite(local)));
        }
    }
}

#[test]
fn change_request_selects_the_source_per_table_1() {
    let svc = on();
    let config = on_config();
    for family in [Family::V4, Family::V6] {
        let client = client_of(family);
        for local in four(family) {
            let other = opposite(local);
            for (ip, port) in [(false, false), (true, false), (false, true), (true, true)] {
                let expected = SocketAddr::new(
                    if ip { other.ip() } else { local.ip() },
                    if port { other.port() } else { local.port() },
                );
                let req = binding_request(Req {
                    change: Some(change(ip, port)),
                    ..Req::default()
                });
                let sent = answer(
                    &svc,
                    &config,
                    &req,
                    tuple(client, local, ClientTransport::Udp),
                );
                assert_eq!(sent.msg().message_type(), MessageType::BINDING_SUCCESS);
                match sent.from_to {
                    None => assert_eq!(expected, local, "no flag: answered as it came"),
                    Some((from, to)) => {
                        assert_eq!(from, expected, "source for ip={ip} port={port}");
                        assert_eq!(to, client, "always back to the client");
                    }
                }
                assert_eq!(
                    sent.origin(),
                    Some(expected),
                    "RESPONSE-ORIGIN is the source"
                );
                assert_eq!(sent.other(), Some(other), "OTHER-ADDRESS ignores the flags");
                assert_eq!(sent.xor_mapped(), Some(client), "the true source");
                assert_eq!(sent.mapped(), Some(client));
                assert_eq!(
                    addrs().response_source(local, ip, port),
                    Some(expected),
                    "the runtime helper agrees"
                );
            }
        }
    }
}

#[test]
fn response_port_redirects_to_the_client_ip_at_that_port() {
    let svc = on();
    let config = on_config();
    for family in [Family::V4, Family::V6] {
        let client = client_of(family);
        let [a1p1, _, _, a2p2] = four(family);
        let req = binding_request(Req {
            port: Some(50_001),
            ..Req::default()
        });
        let sent = answer(
            &svc,
            &config,
            &req,
            tuple(client, a1p1, ClientTransport::Udp),
        );
        assert_eq!(sent.msg().message_type(), MessageType::BINDING_SUCCESS);
        assert_eq!(
            sent.from_to,
            Some((a1p1, SocketAddr::new(client.ip(), 50_001)))
        );
        assert_eq!(sent.origin(), Some(a1p1));
        // XOR-MAPPED-ADDRESS is still where the request came from, not where the answer
        // goes.
        assert_eq!(sent.xor_mapped(), Some(client));
        assert_eq!(sent.mapped(), Some(client));

        // With CHANGE-REQUEST too: from the other address, to the other port.
        let req = binding_request(Req {
            change: Some(change(true, true)),
            port: Some(50_002),
            fingerprint: true,
            ..Req::default()
        });
        let sent = answer(
            &svc,
            &config,
            &req,
            tuple(client, a1p1, ClientTransport::Udp),
        );
        assert_eq!(
            sent.from_to,
            Some((a2p2, SocketAddr::new(client.ip(), 50_002)))
        );
        assert_eq!(sent.origin(), Some(a2p2));
        assert_eq!(sent.msg().verify_fingerprint(), Ok(true));

        // RESPONSE-PORT equal to the source port changes nothing: a plain Send.
        let req = binding_request(Req {
            port: Some(client.port()),
            ..Req::default()
        });
        let sent = answer(
            &svc,
            &config,
            &req,
            tuple(client, a1p1, ClientTransport::Udp),
        );
        assert!(sent.from_to.is_none());
    }
}

#[test]
fn v4_mapped_client_and_local_addresses_are_served_as_ipv4() {
    let svc = on();
    let config = on_config();
    let client = sa("[::ffff:203.0.113.9]:1234");
    let local = sa("[::ffff:198.51.100.1]:3478");
    let req = binding_request(Req {
        change: Some(change(true, false)),
        port: Some(999),
        ..Req::default()
    });
    let sent = answer(
        &svc,
        &config,
        &req,
        tuple(client, local, ClientTransport::Udp),
    );
    assert_eq!(
        sent.from_to,
        Some((sa("198.51.100.2:3478"), sa("203.0.113.9:999")))
    );
    assert_eq!(sent.xor_mapped(), Some(sa("203.0.113.9:1234")));
    assert_eq!(sent.other(), Some(sa("198.51.100.2:3479")));
}

#[test]
fn padding_is_echoed_at_the_request_length() {
    let svc = on();
    let config = on_config();
    let client = client_of(Family::V4);
    let [a1p1, _, a2p1, _] = four(Family::V4);
    for n in [0usize, 1, 4, 1001, 1500, 9000] {
        let req = binding_request(Req {
            padding: Some(n),
            fingerprint: true,
            ..Req::default()
        });
        let sent = answer(
            &svc,
            &config,
            &req,
            tuple(client, a1p1, ClientTransport::Udp),
        );
        assert_eq!(sent.msg().message_type(), MessageType::BINDING_SUCCESS);
        assert_eq!(
            sent.padding_len(),
            Some(n.next_multiple_of(4)),
            "PADDING {n}"
        );
        assert_eq!(sent.msg().verify_fingerprint(), Ok(true));
        // Never more than the request plus the fixed overhead of any answer.
        assert!(sent.bytes.len() <= req.len() + RESPONSE_OVERHEAD);
        assert!(sent.from_to.is_none());
    }

    // With CHANGE-REQUEST: padded, from the other IP.
    let req = binding_request(Req {
        change: Some(change(true, false)),
        padding: Some(1200),
        ..Req::default()
    });
    let sent = answer(
        &svc,
        &config,
        &req,
        tuple(client, a1p1, ClientTransport::Udp),
    );
    assert_eq!(sent.padding_len(), Some(1200));
    assert_eq!(sent.from_to, Some((a2p1, client)));

    // An output buffer too small for the echo gets nothing, not a shorter PADDING.
    let req = binding_request(Req {
        padding: Some(1500),
        ..Req::default()
    });
    let mut out = [0u8; 1500];
    assert_eq!(
        svc.handle_tuple(&req, tuple(client, a1p1, ClientTransport::Udp), &mut out),
        Response::Ignore(Ignored::NoRoom)
    );
    let mut out = vec![0u8; config.max_response_len(req.len())];
    assert!(matches!(
        svc.handle_tuple(&req, tuple(client, a1p1, ClientTransport::Udp), &mut out),
        Response::Send(_)
    ));
}

#[test]
fn padding_with_response_port_is_400_sent_back_to_the_source() {
    let svc = on();
    let config = on_config();
    let client = client_of(Family::V4);
    let req = binding_request(Req {
        port: Some(50_001),
        padding: Some(1400),
        change: Some(change(true, true)),
        ..Req::default()
    });
    let sent = answer(
        &svc,
        &config,
        &req,
        tuple(client, four(Family::V4)[0], ClientTransport::Udp),
    );
    assert_eq!(sent.msg().message_type(), MessageType::BINDING_ERROR);
    assert_eq!(sent.error_code(), Some(400));
    assert!(sent.from_to.is_none(), "errors are never redirected");
    assert!(sent.bytes.len() < 100, "and carry no padding");
}

#[test]
fn malformed_rfc5780_attributes_get_400() {
    let svc = on();
    let config = on_config();
    let client = client_of(Family::V6);
    let local = four(Family::V6)[3];
    let cases: [&[(AttrType, &[u8])]; 5] = [
        &[(AttrType::CHANGE_REQUEST, &[0, 0, 6])],
        &[(AttrType::CHANGE_REQUEST, &[0, 0, 0, 6, 0, 0, 0, 0])],
        &[(AttrType::CHANGE_REQUEST, &[])],
        &[(AttrType::RESPONSE_PORT, &[0xC3])],
        // Port 0: nothing can be sent there.
        &[(AttrType::RESPONSE_PORT, &[0, 0, 0, 0])],
    ];
    for raw in cases {
        let req = binding_request(Req {
            raw,
            fingerprint: true,
            ..Req::default()
        });
        let sent = answer(
            &svc,
            &config,
            &req,
            tuple(client, local, ClientTransport::Udp),
        );
        assert_eq!(sent.msg().message_type(), MessageType::BINDING_ERROR);
        assert_eq!(sent.error_code(), Some(400), "{raw:?}");
        assert!(sent.from_to.is_none());
        assert_eq!(sent.msg().verify_fingerprint(), Ok(true));
    }
    // Unused CHANGE-REQUEST bits are ignored, as the codec reads only A and B (here B:
    // change port).
    let req = binding_request(Req {
        raw: &[(AttrType::CHANGE_REQUEST, &[0xFF, 0xFF, 0xFF, 0xFB])],
        ..Req::default()
    });
    let sent = answer(
        &svc,
        &config,
        &req,
        tuple(client, local, ClientTransport::Udp),
    );
    assert_eq!(sent.msg().message_type(), MessageType::BINDING_SUCCESS);
    assert_eq!(
        sent.from_to.map(|(f, _)| f),
        Some(SocketAddr::new(local.ip(), P1))
    );
}

#[test]
fn off_answers_420_listing_change_request_and_response_port() {
    let client = client_of(Family::V4);
    let a1p1 = four(Family::V4)[0];
    let req = binding_request(Req {
        change: Some(change(true, true)),
        port: Some(50_001),
        ..Req::default()
    });
    let off = BindingConfig::default();
    // Off; on but received elsewhere; on but for the other family only; and the
    // address-less `handle`.
    let elsewhere = on_config();
    let v6_only = BindingConfig {
        software: None,
        rfc5780: Some(Rfc5780Addresses {
            v4: None,
            ..addrs()
        }),
    };
    let cases = [
        (&off, a1p1),
        (&elsewhere, sa("198.51.100.3:3478")),
        (&elsewhere, sa("198.51.100.1:5349")),
        (&v6_only, a1p1),
    ];
    for (config, local) in cases {
        let svc = BindingService::new(config.clone());
        let sent = answer(
            &svc,
            config,
            &req,
            tuple(client, local, ClientTransport::Udp),
        );
        assert_eq!(sent.msg().message_type(), MessageType::BINDING_ERROR);
        assert_eq!(sent.error_code(), Some(420));
        assert_eq!(
            sent.unknown(),
            vec![AttrType::CHANGE_REQUEST, AttrType::RESPONSE_PORT]
        );
        assert!(sent.from_to.is_none());

        // A plain request gets the plain answer: no RFC 5780 attributes at all.
        let sent = answer(
            &svc,
            config,
            &binding_request(Req::default()),
            tuple(client, local, ClientTransport::Udp),
        );
        assert_eq!(sent.xor_mapped(), Some(client));
        assert_eq!(sent.mapped(), None);
        assert_eq!(sent.origin(), None);
        assert_eq!(sent.other(), None);
    }
    let mut out = [0u8; 512];
    let Response::Send(n) = on().handle(&req, client, &mut out) else {
        panic!("`handle` answers in place");
    };
    let msg = Message::new_checked(&out[..n]).unwrap();
    assert_eq!(
        msg.get::<ErrorCodeAttr>().unwrap().unwrap().code,
        ErrorCode::UNKNOWN_ATTRIBUTE
    );
}

#[test]
fn unknown_attributes_still_get_420_and_are_not_redirected() {
    let svc = on();
    let config = on_config();
    let client = client_of(Family::V4);
    let req = binding_request(Req {
        change: Some(change(true, true)),
        port: Some(50_001),
        raw: &[(AttrType(0x7777), b"abcd")],
        ..Req::default()
    });
    let sent = answer(
        &svc,
        &config,
        &req,
        tuple(client, four(Family::V4)[0], ClientTransport::Udp),
    );
    assert_eq!(sent.error_code(), Some(420));
    assert_eq!(
        sent.unknown(),
        vec![AttrType(0x7777)],
        "5780 ones are understood"
    );
    assert!(sent.from_to.is_none());
}

#[test]
fn streams_are_off_by_default_and_never_redirected() {
    let client = client_of(Family::V4);
    let a1p1 = four(Family::V4)[0];
    let flags = binding_request(Req {
        change: Some(change(false, true)),
        ..Req::default()
    });
    let port = binding_request(Req {
        port: Some(50_001),
        ..Req::default()
    });
    let plain = binding_request(Req::default());

    // Off for streams: as without RFC 5780.
    let config = on_config();
    let svc = on();
    for transport in [ClientTransport::Tcp, ClientTransport::Tls] {
        let ft = tuple(client, a1p1, transport);
        assert_eq!(answer(&svc, &config, &flags, ft).error_code(), Some(420));
        assert_eq!(answer(&svc, &config, &plain, ft).other(), None);
    }

    // On for streams: the addresses, but no other source and no other port.
    let config = BindingConfig {
        software: None,
        rfc5780: Some(Rfc5780Addresses {
            streams: true,
            ..addrs()
        }),
    };
    let svc = BindingService::new(config.clone());
    for transport in [ClientTransport::Tcp, ClientTransport::Tls] {
        let ft = tuple(client, a1p1, transport);
        let sent = answer(&svc, &config, &plain, ft);
        assert_eq!(sent.other(), Some(opposite(a1p1)));
        assert_eq!(sent.origin(), Some(a1p1));
        assert_eq!(sent.mapped(), Some(client));
        assert_eq!(answer(&svc, &config, &flags, ft).error_code(), Some(400));
        assert_eq!(answer(&svc, &config, &port, ft).error_code(), Some(400));
        // A CHANGE-REQUEST without flags (some clients always send one) is fine.
        let none = binding_request(Req {
            change: Some(change(false, false)),
            padding: Some(64),
            ..Req::default()
        });
        let sent = answer(&svc, &config, &none, ft);
        assert_eq!(sent.msg().message_type(), MessageType::BINDING_SUCCESS);
        assert_eq!(sent.padding_len(), Some(64));
        assert!(sent.from_to.is_none());
    }
}

#[test]
fn software_and_fingerprint_come_last() {
    let config = BindingConfig {
        software: Some("turnpike test".into()),
        rfc5780: Some(addrs()),
    };
    let svc = BindingService::new(config.clone());
    let client = client_of(Family::V6);
    let req = binding_request(Req {
        change: Some(change(true, false)),
        padding: Some(10),
        fingerprint: true,
        ..Req::default()
    });
    let sent = answer(
        &svc,
        &config,
        &req,
        tuple(client, four(Family::V6)[1], ClientTransport::Udp),
    );
    assert_eq!(sent.msg().verify_fingerprint(), Ok(true));
    assert_eq!(
        sent.msg().get::<Software>().unwrap().unwrap().0,
        "turnpike test"
    );
    let order: Vec<AttrType> = sent.msg().attributes().map(|a| a.ty).collect();
    assert_eq!(
        order,
        vec![
            AttrType::XOR_MAPPED_ADDRESS,
            AttrType::MAPPED_ADDRESS,
            AttrType::RESPONSE_ORIGIN,
            AttrType::OTHER_ADDRESS,
            AttrType::PADDING,
            AttrType::SOFTWARE,
            AttrType::FINGERPRINT,
        ]
    );
}

#[test]
fn every_combination_is_one_bounded_answer_to_the_client_ip() {
    let svc = on();
    let config = on_config();
    for family in [Family::V4, Family::V6] {
        let client = client_of(family);
        for local in four(family) {
            for flags in [
                None,
                Some((false, false)),
                Some((true, false)),
                Some((true, true)),
            ] {
                for port in [None, Some(1), Some(client.port()), Some(65_535)] {
                    for padding in [None, Some(0), Some(3), Some(1472)] {
                        for fingerprint in [false, true] {
                            let req = binding_request(Req {
                                change: flags.map(|(i, p)| change(i, p)),
                                port,
                                padding,
                                fingerprint,
                                raw: &[],
                            });
                            let ft = tuple(client, local, ClientTransport::Udp);
                            // `answer` checks the destination IP, the source and the size.
                            let sent = answer(&svc, &config, &req, ft);
                            if port.is_some() && padding.is_some() {
                                assert_eq!(sent.error_code(), Some(400));
                                continue;
                            }
                            assert_eq!(sent.msg().message_type(), MessageType::BINDING_SUCCESS);
                            if padding.is_some() {
                                assert!(sent.bytes.len() <= req.len() + RESPONSE_OVERHEAD);
                            } else {
                                assert!(sent.bytes.len() <= RESPONSE_OVERHEAD);
                            }
                            let to = sent.from_to.map_or(client, |(_, to)| to);
                            assert_eq!(to, SocketAddr::new(client.ip(), port.unwrap_or(40000)));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn validate_names_what_would_be_ignored() {
    assert_eq!(addrs().validate(), Ok(()));
    assert_eq!(addrs().listen_addresses().len(), 8);
    let cases = [
        (
            Rfc5780Addresses {
                v4: None,
                v6: None,
                ..addrs()
            },
            Rfc5780Error::NoAddresses,
        ),
        (
            Rfc5780Addresses {
                alternate_port: P1,
                ..addrs()
            },
            Rfc5780Error::BadPorts,
        ),
        (
            Rfc5780Addresses {
                primary_port: 0,
                ..addrs()
            },
            Rfc5780Error::BadPorts,
        ),
        (
            Rfc5780Addresses {
                v4: Some((v4_pair().0, v4_pair().0)),
                ..addrs()
            },
            Rfc5780Error::BadIps(Family::V4),
        ),
        (
            Rfc5780Addresses {
                v4: Some((Ipv4Addr::UNSPECIFIED, v4_pair().1)),
                ..addrs()
            },
            Rfc5780Error::BadIps(Family::V4),
        ),
        (
            Rfc5780Addresses {
                v6: Some((v6_pair().0, Ipv4Addr::new(198, 51, 100, 9).to_ipv6_mapped())),
                ..addrs()
            },
            Rfc5780Error::BadIps(Family::V6),
        ),
    ];
    for (bad, err) in cases {
        assert_eq!(bad.validate(), Err(err), "{bad:?}");
        assert!(!err.to_string().is_empty());
    }

    // The core ignores a bad family: its clients get 420, the other family is served.
    let bad_v4 = BindingConfig {
        software: None,
        rfc5780: Some(Rfc5780Addresses {
            v4: Some((v4_pair().0, v4_pair().0)),
            ..addrs()
        }),
    };
    let svc = BindingService::new(bad_v4.clone());
    assert_eq!(
        bad_v4.rfc5780.unwrap().listen_addresses(),
        four(Family::V6).to_vec()
    );
    let req = binding_request(Req {
        change: Some(change(true, true)),
        ..Req::default()
    });
    let v4 = answer(
        &svc,
        &bad_v4,
        &req,
        tuple(
            client_of(Family::V4),
            four(Family::V4)[0],
            ClientTransport::Udp,
        ),
    );
    assert_eq!(v4.error_code(), Some(420));
    let v6 = answer(
        &svc,
        &bad_v4,
        &req,
        tuple(
            client_of(Family::V6),
            four(Family::V6)[0],
            ClientTransport::Udp,
        ),
    );
    assert_eq!(v6.from_to.map(|(f, _)| f), Some(four(Family::V6)[3]));
}

// ----- through the TURN server ----------------------------------------------------------

#[test]
fn turn_server_answers_change_request_with_reply_from() {
    // `common::server_addr()` is 198.51.100.1:3478, A1:P1 of the set.
    let mut sim = Sim::with(|c| c.rfc5780 = Some(addrs()));
    let ft = udp("203.0.113.50:41000");
    let plain = binding_request(Req::default());
    let Outcome::Reply(resp) = sim.client_send(ft, &plain) else {
        panic!("a plain Binding is answered in place");
    };
    let msg = resp.msg();
    assert_eq!(
        msg.get::<OtherAddress>().unwrap().unwrap().0,
        sa("198.51.100.2:3479")
    );
    assert_eq!(msg.get::<ResponseOrigin>().unwrap().unwrap().0, ft.server);
    assert_eq!(resp.mapped(), Some(ft.client));

    let req = binding_request(Req {
        change: Some(change(true, false)),
        port: Some(41_001),
        ..Req::default()
    });
    match sim.client_send(ft, &req) {
        Outcome::ReplyFrom { reply, from, to } => {
            assert_eq!(from, sa("198.51.100.2:3478"));
            assert_eq!(to, sa("203.0.113.50:41001"));
            assert_eq!(reply.mapped(), Some(ft.client));
            assert_eq!(
                reply.msg().get::<ResponseOrigin>().unwrap().unwrap().0,
                from
            );
        }
        other => panic!("expected ReplyFrom, got {other:?}"),
    }

    // A request received on A2:P2 (the runtime's socket there) is served too.
    let on_a2p2 = FiveTuple {
        server: sa("198.51.100.2:3479"),
        ..ft
    };
    let req = binding_request(Req {
        change: Some(change(true, true)),
        ..Req::default()
    });
    match sim.client_send(on_a2p2, &req) {
        Outcome::ReplyFrom { from, to, .. } => {
            assert_eq!(from, sa("198.51.100.1:3478"));
            assert_eq!(to, ft.client);
        }
        other => panic!("expected ReplyFrom, got {other:?}"),
    }

    // Over TCP (streams off): as without RFC 5780.
    let tcp = common::tcp("203.0.113.50:41000");
    sim.client_send(tcp, &req).reply().assert_error(420);
}

#[test]
fn turn_server_without_rfc5780_is_unchanged() {
    let mut sim = Sim::new();
    let ft = udp("203.0.113.50:41000");
    let req = binding_request(Req {
        change: Some(change(true, true)),
        port: Some(41_001),
        ..Req::default()
    });
    let resp = sim.client_send(ft, &req).reply();
    resp.assert_error(420);
    assert_eq!(
        resp.unknown_attributes(),
        vec![AttrType::CHANGE_REQUEST.0, AttrType::RESPONSE_PORT.0]
    );
    let resp = sim
        .client_send(ft, &binding_request(Req::default()))
        .reply()
        .success();
    assert_eq!(resp.mapped(), Some(ft.client));
    assert!(!resp.has(AttrType::OTHER_ADDRESS));
    assert!(!resp.has(AttrType::RESPONSE_ORIGIN));
    assert!(!resp.has(AttrType::MAPPED_ADDRESS));
}
