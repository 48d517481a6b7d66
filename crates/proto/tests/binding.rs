//! The Binding service, driven with bytes: what is answered, how, and what is not.

use std::net::SocketAddr;

use turnpike_proto::binding::{BindingConfig, BindingService, Ignored, Response};
use turnpike_stun::attr::{ErrorCodeAttr, Software, UnknownAttributes, XorMappedAddress};
use turnpike_stun::{
    AttrType, Class, ErrorCode, Message, MessageType, MessageWriter, Method, TransactionId,
};

const TID: TransactionId = TransactionId([9; 12]);

fn request(ty: MessageType, fingerprint: bool, extra: &[(AttrType, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0u8; 512];
    let mut w = MessageWriter::new(&mut buf, ty, TID).unwrap();
    for (t, v) in extra {
        w.put_raw(*t, v).unwrap();
    }
    if fingerprint {
        w.put_fingerprint().unwrap();
    }
    let n = w.finish();
    buf.truncate(n);
    buf
}

fn answer(svc: &BindingService, packet: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let mut out = [0u8; 1024];
    match svc.handle(packet, from, &mut out) {
        Response::Send(n) => Some(out[..n].to_vec()),
        Response::SendFrom { .. } => panic!("`handle` never redirects"),
        Response::Ignore(_) => None,
    }
}

#[test]
fn binding_request_gets_xor_mapped_address_v4_and_v6() {
    let svc = BindingService::default();
    for from in ["203.0.113.7:40000", "[2001:db8::1]:5555"] {
        let from: SocketAddr = from.parse().unwrap();
        let resp = answer(
            &svc,
            &request(MessageType::BINDING_REQUEST, false, &[]),
            from,
        )
        .unwrap();
        let msg = Message::new_checked(&resp[..]).unwrap();
        assert_eq!(msg.message_type(), MessageType::BINDING_SUCCESS);
        assert_eq!(msg.transaction_id(), TID);
        assert_eq!(msg.get::<XorMappedAddress>().unwrap().unwrap().0, from);
        assert!(!msg.has_fingerprint());
        assert!(
            msg.get::<Software>().unwrap().is_none(),
            "no SOFTWARE by default"
        );
    }
}

#[test]
fn v4_mapped_source_is_reported_as_v4() {
    let svc = BindingService::default();
    let from: SocketAddr = "[::ffff:198.51.100.4]:1234".parse().unwrap();
    let resp = answer(
        &svc,
        &request(MessageType::BINDING_REQUEST, false, &[]),
        from,
    )
    .unwrap();
    let msg = Message::new_checked(&resp[..]).unwrap();
    let expected: SocketAddr = "198.51.100.4:1234".parse().unwrap();
    assert_eq!(msg.get::<XorMappedAddress>().unwrap().unwrap().0, expected);
}

#[test]
fn fingerprint_is_echoed_and_software_is_configurable() {
    let svc = BindingService::new(BindingConfig {
        software: Some("turnpike test".into()),
        ..BindingConfig::default()
    });
    let from: SocketAddr = "192.0.2.1:9".parse().unwrap();
    let resp = answer(
        &svc,
        &request(MessageType::BINDING_REQUEST, true, &[]),
        from,
    )
    .unwrap();
    let msg = Message::new_checked(&resp[..]).unwrap();
    assert_eq!(msg.verify_fingerprint(), Ok(true));
    assert_eq!(msg.get::<Software>().unwrap().unwrap().0, "turnpike test");
}

#[test]
fn bad_fingerprint_indications_and_responses_are_ignored() {
    let svc = BindingService::default();
    let from: SocketAddr = "192.0.2.1:9".parse().unwrap();
    let mut req = request(MessageType::BINDING_REQUEST, true, &[]);
    let last = req.len() - 1;
    req[last] ^= 1;
    let mut out = [0u8; 256];
    assert_eq!(
        svc.handle(&req, from, &mut out),
        Response::Ignore(Ignored::BadFingerprint)
    );
    let ind = request(
        MessageType::new(Method::BINDING, Class::Indication),
        false,
        &[],
    );
    assert_eq!(
        svc.handle(&ind, from, &mut out),
        Response::Ignore(Ignored::NotARequest)
    );
    let resp = request(MessageType::BINDING_SUCCESS, false, &[]);
    assert_eq!(
        svc.handle(&resp, from, &mut out),
        Response::Ignore(Ignored::NotARequest)
    );
}

#[test]
fn unknown_comprehension_required_attribute_gets_420() {
    let svc = BindingService::default();
    let from: SocketAddr = "192.0.2.1:9".parse().unwrap();
    let req = request(
        MessageType::BINDING_REQUEST,
        true,
        &[
            (AttrType(0x7777), b"abcd"),
            (AttrType(0xC001), b"optional is fine"),
            (AttrType::CHANGE_REQUEST, &[0, 0, 0, 6]),
        ],
    );
    let resp = answer(&svc, &req, from).unwrap();
    let msg = Message::new_checked(&resp[..]).unwrap();
    assert_eq!(msg.message_type(), MessageType::BINDING_ERROR);
    assert_eq!(
        msg.get::<ErrorCodeAttr>().unwrap().unwrap().code,
        ErrorCode::UNKNOWN_ATTRIBUTE
    );
    let listed: Vec<_> = msg
        .get::<UnknownAttributes>()
        .unwrap()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(listed, vec![AttrType(0x7777), AttrType::CHANGE_REQUEST]);
    assert_eq!(msg.verify_fingerprint(), Ok(true));
}

#[test]
fn other_methods_get_400() {
    let svc = BindingService::default();
    let from: SocketAddr = "192.0.2.1:9".parse().unwrap();
    let req = request(
        MessageType::new(Method::ALLOCATE, Class::Request),
        false,
        &[],
    );
    let resp = answer(&svc, &req, from).unwrap();
    let msg = Message::new_checked(&resp[..]).unwrap();
    assert_eq!(
        msg.message_type(),
        MessageType::new(Method::ALLOCATE, Class::Error)
    );
    assert_eq!(
        msg.get::<ErrorCodeAttr>().unwrap().unwrap().code,
        ErrorCode::BAD_REQUEST
    );
}

#[test]
fn malformed_requests_never_get_a_larger_answer() {
    let svc = BindingService::default();
    let from: SocketAddr = "192.0.2.1:9".parse().unwrap();
    // A valid header whose one attribute claims more bytes than there are: 400 only when
    // the answer (28 bytes, no reason phrase) fits in the request's size.
    let mut small = request(
        MessageType::BINDING_REQUEST,
        false,
        &[(AttrType::USERNAME, b"")],
    );
    small[22..24].copy_from_slice(&100u16.to_be_bytes());
    let mut out = [0u8; 256];
    assert_eq!(
        svc.handle(&small, from, &mut out),
        Response::Ignore(Ignored::WouldAmplify)
    );

    let long = "x".repeat(64);
    let mut big = request(
        MessageType::BINDING_REQUEST,
        false,
        &[(AttrType::USERNAME, long.as_bytes())],
    );
    big[22..24].copy_from_slice(&200u16.to_be_bytes());
    let resp = answer(&svc, &big, from).expect("a 400 that is smaller than the request");
    assert!(resp.len() <= big.len());
    let msg = Message::new_checked(&resp[..]).unwrap();
    assert_eq!(
        msg.get::<ErrorCodeAttr>().unwrap().unwrap().code,
        ErrorCode::BAD_REQUEST
    );

    // Every prefix and garbage: never a panic, never an answer.
    let good = request(
        MessageType::BINDING_REQUEST,
        true,
        &[(AttrType::USERNAME, b"alice")],
    );
    for n in 0..good.len() {
        assert!(
            answer(&svc, &good[..n], from).is_none(),
            "prefix {n} answered"
        );
    }
    for junk in [
        &b"\x00"[..],
        b"GET / HTTP/1.1\r\n\r\n",
        &[0xFF; 40],
        &[0x40, 0, 0, 4, 1, 2, 3, 4],
    ] {
        assert!(answer(&svc, junk, from).is_none());
    }
}
