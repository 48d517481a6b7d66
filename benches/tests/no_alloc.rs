//! turnpike-stun's parse-and-verify path (`Message::new_checked`, `verify_fingerprint`,
//! `verify_integrity`, `get::<Username>()`) and its response writer perform no heap
//! allocation, shown with a counting global allocator. As a check that the counter works,
//! `Vec::with_capacity` and the competitors' equivalent paths are seen allocating.

// `GlobalAlloc` is an unsafe trait and forwarding to `System` needs unsafe calls; that is
// the only unsafe code here.
#![allow(unsafe_code, missing_docs, unreachable_pub)]

#[path = "../benches/impls/mod.rs"]
mod impls;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use turnpike_benches::{
    MAPPED_ADDRESS, RFC5769_PASSWORD, RFC5769_REQUEST, RFC5769_TRANSACTION_ID, RFC5769_USERNAME,
    rfc5769_key, turnpike_build_response, turnpike_parse_only, turnpike_parse_verify,
};
use turnpike_stun::attr::Username;
use turnpike_stun::{DecodeError, IntegrityKey, IntegrityKind, Message, TransactionId};

/// Counts allocations (`alloc`, `alloc_zeroed`, `realloc`) made by threads that opted in
/// with [`count`], so the test harness's own threads do not disturb the count.
struct CountingAlloc;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` initialiser and no destructor: reading it never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

impl CountingAlloc {
    fn note(&self) {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees (and the caller's obligations) carry over exactly; the counting
// itself touches only an atomic and a const-initialised thread-local `Cell`, neither of
// which allocates or unwinds.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note();
        // SAFETY: as above; `ptr` was allocated by this allocator, i.e. by `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Runs `f` and returns its result with the number of allocations this thread made in it.
fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    // Each test thread counts only itself, but tests run in parallel and share the
    // counter: take a lock so two counting sections never overlap.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, ALLOCATIONS.load(Ordering::SeqCst) - before)
}

#[test]
fn counter_sees_allocations() {
    let (v, n) = count(|| black_box(Vec::<u8>::with_capacity(64)));
    drop(v);
    assert_eq!(n, 1, "Vec::with_capacity must count as one allocation");
}

#[test]
fn turnpike_parse_and_verify_does_not_allocate() {
    let key = rfc5769_key();
    // The very first call counts too (cold caches, CPU feature detection, ...).
    for round in 0..1000 {
        let (user_ok, n) = count(|| {
            let msg = Message::new_checked(black_box(RFC5769_REQUEST)).unwrap();
            let fp = msg.verify_fingerprint();
            let mi = msg.verify_integrity(&key);
            let user = msg.get::<Username>();
            (fp, mi, user.map(|u| u.map(|u| u.0 == RFC5769_USERNAME)))
        });
        assert_eq!(
            user_ok,
            (Ok(true), Ok(IntegrityKind::Sha1), Ok(Some(true))),
            "round {round}"
        );
        assert_eq!(n, 0, "round {round}: parse + verify allocated {n} times");
    }

    // The same through the helper the benchmark measures.
    let (r, n) = count(|| turnpike_parse_verify(RFC5769_REQUEST, &key, |u| u == RFC5769_USERNAME));
    assert_eq!((r, n), (Ok(true), 0));
    let (r, n) = count(|| turnpike_parse_only(RFC5769_REQUEST, |u| u == RFC5769_USERNAME));
    assert_eq!((r, n), (Ok(true), 0));
}

#[test]
fn turnpike_error_paths_do_not_allocate() {
    let key = rfc5769_key();
    let wrong = IntegrityKey::new(b"not the password");
    let mut flipped = [0u8; 108];
    flipped.copy_from_slice(RFC5769_REQUEST);
    flipped[30] ^= 1;
    let (r, n) = count(|| {
        [
            turnpike_parse_verify(RFC5769_REQUEST, &wrong, |_| ()),
            turnpike_parse_verify(&flipped, &key, |_| ()),
            turnpike_parse_verify(&RFC5769_REQUEST[..107], &key, |_| ()),
            turnpike_parse_verify(&[0xff; 20], &key, |_| ()),
        ]
    });
    assert_eq!(
        r,
        [
            Err(DecodeError::IntegrityMismatch),
            Err(DecodeError::FingerprintMismatch),
            Err(DecodeError::LengthMismatch),
            Err(DecodeError::NotStun),
        ]
    );
    assert_eq!(n, 0);
}

#[test]
fn turnpike_key_and_response_writer_do_not_allocate() {
    let (key, n) = count(|| IntegrityKey::new(RFC5769_PASSWORD.as_bytes()));
    assert_eq!(n, 0, "IntegrityKey::new allocated");
    let mut buf = [0u8; 128];
    let (len, n) = count(|| {
        turnpike_build_response(
            &mut buf,
            TransactionId(RFC5769_TRANSACTION_ID),
            MAPPED_ADDRESS,
            &key,
        )
    });
    assert_eq!(n, 0, "the response writer allocated");
    assert_eq!(len, Ok(64));
}

/// Not a requirement on the competitors: shows the counter catches real library
/// allocations, and records how many each one makes per message (run with
/// `--nocapture` to see them).
#[test]
fn competitors_allocate() {
    let dec = impls::stun_rs::verifying_decoder(RFC5769_PASSWORD);
    let (r, stun_rs) = count(|| impls::stun_rs::parse(&dec, RFC5769_REQUEST, true, |_| ()));
    r.unwrap();

    let mut dec = impls::stun_codec::Decoder::new();
    let (r, stun_codec) = count(|| {
        impls::stun_codec::parse(&mut dec, RFC5769_REQUEST, Some(RFC5769_PASSWORD), |_| ())
    });
    r.unwrap();

    let mut m = impls::webrtc::message();
    let key = impls::webrtc::key(RFC5769_PASSWORD);
    // Once to size the reused message's buffers, then counted.
    impls::webrtc::parse(&mut m, RFC5769_REQUEST, Some(&key), |_| ()).unwrap();
    let (r, webrtc) = count(|| impls::webrtc::parse(&mut m, RFC5769_REQUEST, Some(&key), |_| ()));
    r.unwrap();

    println!(
        "allocations per parse_verify: stun-rs {stun_rs}, stun_codec {stun_codec}, \
         webrtc-stun {webrtc} (turnpike 0)"
    );
    assert!(stun_rs > 0 && stun_codec > 0 && webrtc > 0);
}
