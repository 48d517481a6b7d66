//! turnpike-stun against stun-rs, stun_codec and webrtc-rs `stun`, on the RFC 5769 §2.1
//! sample request. See `benches/README.md` for what each entry does and for results.
//!
//! Before any entry is measured, its code path is run once and its result asserted (the
//! USERNAME read back, or the built response verified by an independent decoder), so a
//! competitor that silently fails cannot look fast.

#![allow(missing_docs, unreachable_pub)]

mod impls;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use turnpike_benches::{
    MAPPED_ADDRESS, RESPONSE_LEN, RFC5769_PASSWORD, RFC5769_REQUEST, RFC5769_TRANSACTION_ID,
    RFC5769_USERNAME, rfc5769_key, turnpike_build_response, turnpike_parse_only,
    turnpike_parse_verify,
};
use turnpike_stun::{IntegrityKey, IntegrityKind, Message, MessageType, TransactionId};

/// Checks a built response with turnpike's decoder: type, transaction ID, integrity with
/// the RFC 5769 key, fingerprint, address.
fn assert_response(bytes: &[u8]) {
    use turnpike_stun::attr::XorMappedAddress;
    assert_eq!(bytes.len(), RESPONSE_LEN);
    let msg = Message::new_checked(bytes).expect("response parses");
    assert_eq!(msg.message_type(), MessageType::BINDING_SUCCESS);
    assert_eq!(msg.transaction_id(), TransactionId(RFC5769_TRANSACTION_ID));
    assert_eq!(
        msg.verify_integrity(&rfc5769_key()),
        Ok(IntegrityKind::Sha1)
    );
    assert_eq!(msg.verify_fingerprint(), Ok(true));
    assert_eq!(
        msg.get::<XorMappedAddress>(),
        Ok(Some(XorMappedAddress(MAPPED_ADDRESS)))
    );
}

fn parse_verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_verify");
    let pkt = RFC5769_REQUEST;

    // turnpike: the IntegrityKey (HMAC pads) is prepared once, as the server caches it.
    let key = rfc5769_key();
    assert_eq!(
        turnpike_parse_verify(pkt, &key, |u| u == RFC5769_USERNAME),
        Ok(true)
    );
    g.bench_function("turnpike", |b| {
        b.iter(|| turnpike_parse_verify(black_box(pkt), &key, |u| black_box(u.len())))
    });

    // turnpike again, preparing the key for every message (no cache): what the pad
    // precomputation is worth. Informative; not the headline entry.
    g.bench_function("turnpike (key per message)", |b| {
        b.iter(|| {
            let key = IntegrityKey::new(black_box(RFC5769_PASSWORD).as_bytes());
            turnpike_parse_verify(black_box(pkt), &key, |u| black_box(u.len()))
        })
    });

    let dec = impls::stun_rs::verifying_decoder(RFC5769_PASSWORD);
    assert_eq!(
        impls::stun_rs::parse(&dec, pkt, true, |u| u == RFC5769_USERNAME),
        Ok(true)
    );
    g.bench_function("stun-rs", |b| {
        b.iter(|| impls::stun_rs::parse(&dec, black_box(pkt), true, |u| black_box(u.len())))
    });

    let mut dec = impls::stun_codec::Decoder::new();
    assert_eq!(
        impls::stun_codec::parse(&mut dec, pkt, Some(RFC5769_PASSWORD), |u| {
            u == RFC5769_USERNAME
        }),
        Ok(true)
    );
    g.bench_function("stun_codec", |b| {
        b.iter(|| {
            impls::stun_codec::parse(&mut dec, black_box(pkt), Some(RFC5769_PASSWORD), |u| {
                black_box(u.len())
            })
        })
    });

    let mut m = impls::webrtc::message();
    let wkey = impls::webrtc::key(RFC5769_PASSWORD);
    assert_eq!(
        impls::webrtc::parse(&mut m, pkt, Some(&wkey), |u| u == RFC5769_USERNAME),
        Ok(true)
    );
    g.bench_function("webrtc-stun", |b| {
        b.iter(|| impls::webrtc::parse(&mut m, black_box(pkt), Some(&wkey), |u| black_box(u.len())))
    });
    g.finish();
}

fn build_response(c: &mut Criterion) {
    let mut g = c.benchmark_group("build_response");
    let tid = RFC5769_TRANSACTION_ID;
    let addr = MAPPED_ADDRESS;

    let key = rfc5769_key();
    let mut buf = [0u8; 128];
    let n = turnpike_build_response(&mut buf, TransactionId(tid), addr, &key).unwrap();
    assert_response(&buf[..n]);
    g.bench_function("turnpike", |b| {
        b.iter(|| {
            turnpike_build_response(
                &mut buf,
                TransactionId(black_box(tid)),
                black_box(addr),
                &key,
            )
        })
    });

    let enc = impls::stun_rs::encoder();
    let skey = impls::stun_rs::key(RFC5769_PASSWORD);
    let mut buf = [0u8; 128];
    let n = impls::stun_rs::build_response(&enc, &mut buf, tid, addr, &skey).unwrap();
    assert_response(&buf[..n]);
    g.bench_function("stun-rs", |b| {
        b.iter(|| {
            impls::stun_rs::build_response(&enc, &mut buf, black_box(tid), black_box(addr), &skey)
        })
    });

    let mut enc = impls::stun_codec::Encoder::new();
    let bytes = impls::stun_codec::build_response(&mut enc, tid, addr, RFC5769_PASSWORD).unwrap();
    assert_response(&bytes);
    g.bench_function("stun_codec", |b| {
        b.iter(|| {
            impls::stun_codec::build_response(
                &mut enc,
                black_box(tid),
                black_box(addr),
                RFC5769_PASSWORD,
            )
        })
    });

    let mut m = impls::webrtc::message();
    let wkey = impls::webrtc::key(RFC5769_PASSWORD);
    let n = impls::webrtc::build_response(&mut m, tid, addr, &wkey).unwrap();
    assert_response(&m.raw[..n]);
    g.bench_function("webrtc-stun", |b| {
        b.iter(|| impls::webrtc::build_response(&mut m, black_box(tid), black_box(addr), &wkey))
    });
    g.finish();
}

fn parse_only(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_only");
    let pkt = RFC5769_REQUEST;

    assert_eq!(
        turnpike_parse_only(pkt, |u| u == RFC5769_USERNAME),
        Ok(true)
    );
    g.bench_function("turnpike", |b| {
        b.iter(|| turnpike_parse_only(black_box(pkt), |u| black_box(u.len())))
    });

    let dec = impls::stun_rs::plain_decoder();
    assert_eq!(
        impls::stun_rs::parse(&dec, pkt, false, |u| u == RFC5769_USERNAME),
        Ok(true)
    );
    g.bench_function("stun-rs", |b| {
        b.iter(|| impls::stun_rs::parse(&dec, black_box(pkt), false, |u| black_box(u.len())))
    });

    let mut dec = impls::stun_codec::Decoder::new();
    assert_eq!(
        impls::stun_codec::parse(&mut dec, pkt, None, |u| u == RFC5769_USERNAME),
        Ok(true)
    );
    g.bench_function("stun_codec (decoder checks FINGERPRINT)", |b| {
        b.iter(|| impls::stun_codec::parse(&mut dec, black_box(pkt), None, |u| black_box(u.len())))
    });

    let mut m = impls::webrtc::message();
    assert_eq!(
        impls::webrtc::parse(&mut m, pkt, None, |u| u == RFC5769_USERNAME),
        Ok(true)
    );
    g.bench_function("webrtc-stun", |b| {
        b.iter(|| impls::webrtc::parse(&mut m, black_box(pkt), None, |u| black_box(u.len())))
    });
    g.finish();
}

/// turnpike's parse_verify split into its steps, plus the bare primitives underneath
/// (HMAC-SHA1 from a prepared state over the 80 covered bytes; CRC-32 over the 100
/// bytes before FINGERPRINT), to show where the time goes.
fn turnpike_steps(c: &mut Criterion) {
    use hmac::{Hmac, Mac};
    use turnpike_stun::attr::Username;

    let mut g = c.benchmark_group("turnpike_steps");
    let pkt = RFC5769_REQUEST;
    let key = rfc5769_key();
    let msg = Message::new_checked(pkt).unwrap();

    g.bench_function("new_checked", |b| {
        b.iter(|| Message::new_checked(black_box(pkt)).is_ok())
    });
    g.bench_function("verify_fingerprint", |b| {
        b.iter(|| black_box(&msg).verify_fingerprint())
    });
    g.bench_function("verify_integrity", |b| {
        b.iter(|| black_box(&msg).verify_integrity(&key))
    });
    g.bench_function("get_username", |b| {
        b.iter(|| {
            black_box(&msg)
                .get::<Username>()
                .map(|u| u.map(|u| u.0.len()))
        })
    });
    g.bench_function("IntegrityKey::new", |b| {
        b.iter(|| IntegrityKey::new(black_box(RFC5769_PASSWORD).as_bytes()))
    });

    let prepared = <Hmac<sha1::Sha1> as Mac>::new_from_slice(RFC5769_PASSWORD.as_bytes()).unwrap();
    g.bench_function("primitive: HMAC-SHA1 80 B, prepared key", |b| {
        b.iter(|| {
            let mut mac = prepared.clone();
            mac.update(black_box(&pkt[..80]));
            mac.finalize().into_bytes()
        })
    });
    g.bench_function("primitive: HMAC-SHA1 80 B, key per call", |b| {
        b.iter(|| {
            let mut mac =
                <Hmac<sha1::Sha1> as Mac>::new_from_slice(black_box(RFC5769_PASSWORD).as_bytes())
                    .unwrap();
            mac.update(black_box(&pkt[..80]));
            mac.finalize().into_bytes()
        })
    });
    g.bench_function("primitive: CRC-32 100 B", |b| {
        b.iter(|| crc32fast::hash(black_box(&pkt[..100])))
    });
    g.finish();
}

criterion_group!(
    benches,
    parse_verify,
    build_response,
    parse_only,
    turnpike_steps
);
criterion_main!(benches);
