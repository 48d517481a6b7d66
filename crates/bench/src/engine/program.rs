//! How the engine runs programs: starts the queued ones, gives slots their sockets
//! (resting deleted allocations' sockets when the server keeps their 5-tuples), sends and
//! retransmits requests, and handles responses (401, 438 and 437 included) and timeouts.

use std::io;
use std::net::UdpSocket;
use std::time::Duration;

use turnpike_stun::attr::{Lifetime, Nonce, Realm, XorRelayedAddress};
use turnpike_stun::{Class, Message};

use super::request::encode;
use super::{
    Engine, EngineError, FIRST_COOLDOWN, Finished, MAX_COOLDOWN, MISMATCH_RETRIES, POOL_MAX,
    STALE_RETRIES, Step,
};
use crate::client::error_code;

impl Engine {
    pub(super) fn start_queued(&mut self, finished: &mut Vec<Finished>) {
        while self.inflight.len() < self.cfg.concurrency.max(1) {
            let Some((s, program)) = self.queue.pop_front() else {
                break;
            };
            if self.slots[s].program.is_some() {
                continue;
            }
            let slot = &mut self.slots[s];
            slot.program = Some(program);
            slot.step = 0;
            slot.mismatches = 0;
            slot.started = self.now;
            let allocates = program.steps()[0] == Step::Allocate;
            if allocates {
                slot.signer = None;
                slot.nonce.clear();
                slot.relayed = None;
            }
            slot.pos = self.inflight.len();
            self.inflight.push(s);
            let socket = if allocates {
                self.socket_for_allocation(s)
            } else if self.slots[s].socket.is_none() {
                self.open_socket(s)
            } else {
                Ok(())
            };
            if let Err(e) = socket {
                self.fail(s, &EngineError::Io(e), finished);
                continue;
            }
            self.send_step(s, finished);
        }
    }

    /// Gives slot `s` a socket for a new allocation: its own at once while the cooldown
    /// is zero, else the socket that rested longest if it rested long enough (or too
    /// many are resting), else a new one.
    fn socket_for_allocation(&mut self, s: usize) -> io::Result<()> {
        let slot = &mut self.slots[s];
        if self.cooldown.is_zero() {
            if slot.socket.is_some() {
                slot.reused = true;
                slot.rested = Duration::ZERO;
                return Ok(());
            }
        } else if let Some(old) = slot.socket.take() {
            self.rest(old);
        }
        if let Some(&(at, _)) = self.resting.front() {
            let rested = self.now.saturating_duration_since(at);
            if rested >= self.cooldown || self.resting.len() > POOL_MAX {
                if let Some((_, socket)) = self.resting.pop_front() {
                    if let Some(epoll) = &self.epoll {
                        epoll.add(&socket, s as u64)?;
                    }
                    let slot = &mut self.slots[s];
                    slot.socket = Some(socket);
                    slot.reused = true;
                    slot.rested = rested;
                    return Ok(());
                }
            }
        }
        self.open_socket(s)
    }

    /// Puts a socket to rest (unwatched) until the server has forgotten its 5-tuple.
    fn rest(&mut self, socket: UdpSocket) {
        if let Some(epoll) = &self.epoll {
            let _ = epoll.delete(&socket);
        }
        self.resting.push_back((self.now, socket));
        self.stats.sockets_resting_max = self
            .stats
            .sockets_resting_max
            .max(self.resting.len() as u64);
    }

    fn open_socket(&mut self, s: usize) -> io::Result<()> {
        let socket = UdpSocket::bind(self.local)?;
        socket.connect(self.cfg.server)?;
        socket.set_nonblocking(true)?;
        if let Some(epoll) = &self.epoll {
            epoll.add(&socket, s as u64)?;
        }
        self.stats.sockets_opened += 1;
        let slot = &mut self.slots[s];
        slot.socket = Some(socket);
        slot.reused = false;
        slot.rested = Duration::ZERO;
        Ok(())
    }

    /// Encodes the slot's current step as a new transaction and sends it.
    fn send_step(&mut self, s: usize, finished: &mut Vec<Finished>) {
        let tid = self.tids.next_id();
        let cfg = &self.cfg;
        let slot = &mut self.slots[s];
        let Some(program) = slot.program else {
            return;
        };
        let step = program.steps()[slot.step];
        slot.tid = tid;
        slot.sent = 0;
        let encoded = encode(
            &mut slot.req,
            step,
            tid,
            slot.signer.as_deref(),
            &slot.nonce,
            cfg,
        );
        if let Err(e) = encoded {
            self.fail(s, &e, finished);
            return;
        }
        self.transmit(s);
    }

    /// Sends the slot's request (again) and arms its timer. A send error counts as a
    /// lost transmission: the timer retransmits.
    fn transmit(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        if let Some(socket) = &slot.socket {
            let _ = socket.send(&slot.req);
        }
        slot.sent += 1;
        slot.txseq = slot.txseq.wrapping_add(1);
        self.stats.requests_sent += 1;
        let slot_id = u32::try_from(s).unwrap_or(u32::MAX);
        self.timers
            .push_back((self.now + self.cfg.rto, slot_id, slot.txseq));
    }

    pub(super) fn expire_timers(&mut self, finished: &mut Vec<Finished>) {
        while let Some(&(at, s, seq)) = self.timers.front() {
            if at > self.now {
                break;
            }
            self.timers.pop_front();
            let s = s as usize;
            let Some(slot) = self.slots.get(s) else {
                continue;
            };
            if slot.program.is_none() || slot.txseq != seq {
                continue;
            }
            if slot.sent < self.cfg.transmissions.max(1) {
                self.stats.retransmissions += 1;
                self.transmit(s);
            } else {
                self.stats.timeouts += 1;
                let step = slot
                    .program
                    .map_or(Step::Allocate, |p| p.steps()[slot.step]);
                self.fail(s, &EngineError::Timeout(step.method()), finished);
            }
        }
    }

    /// Reads one datagram from a readable slot socket and handles it.
    pub(super) fn on_readable(&mut self, s: usize, finished: &mut Vec<Finished>) {
        let mut rx = std::mem::take(&mut self.rx);
        let n = match self.slots.get(s).and_then(|slot| slot.socket.as_ref()) {
            None => None,
            Some(socket) => match socket.recv(&mut rx) {
                Ok(n) => Some(n),
                // Nothing (a stale or spurious event), or ICMP port unreachable from an
                // earlier send: the timer retransmits.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    None
                }
                Err(e) => {
                    self.note_error(&EngineError::Io(e));
                    None
                }
            },
        };
        if let Some(n) = n {
            self.on_datagram(s, &rx[..n.min(rx.len())], finished);
        }
        self.rx = rx;
    }

    fn on_datagram(&mut self, s: usize, data: &[u8], finished: &mut Vec<Finished>) {
        if matches!(data.first(), Some(0x40..=0x7F)) {
            self.stats.channel_data += 1;
            self.slots[s].channel_data += 1;
            return;
        }
        let Ok(msg) = Message::new_checked(data) else {
            self.stats.stray += 1;
            return;
        };
        let slot = &self.slots[s];
        let Some(program) = slot.program else {
            self.stats.stray += 1;
            return;
        };
        if msg.transaction_id() != slot.tid {
            self.stats.stray += 1;
            return;
        }
        let step = program.steps()[slot.step];
        let ty = msg.message_type();
        if ty.method != step.method() {
            self.stats.stray += 1;
            return;
        }
        match ty.class {
            Class::Success => self.on_success(s, step, &msg, finished),
            Class::Error => self.on_error(s, step, &msg, finished),
            _ => self.stats.stray += 1,
        }
    }

    fn on_success(
        &mut self,
        s: usize,
        step: Step,
        msg: &Message<&[u8]>,
        finished: &mut Vec<Finished>,
    ) {
        let verified = self.slots[s]
            .signer
            .as_ref()
            .is_none_or(|sg| msg.verify_integrity(&sg.key).is_ok());
        if !verified {
            let e = EngineError::Protocol("response MESSAGE-INTEGRITY does not verify".into());
            self.fail(s, &e, finished);
            return;
        }
        let slot = &mut self.slots[s];
        let lifetime = msg.get::<Lifetime>().ok().flatten().map(|l| l.0);
        match step {
            Step::Allocate => {
                let Some(relayed) = msg.get::<XorRelayedAddress>().ok().flatten() else {
                    let e = EngineError::Protocol(
                        "Allocate success without XOR-RELAYED-ADDRESS".into(),
                    );
                    self.fail(s, &e, finished);
                    return;
                };
                slot.relayed = Some(relayed.0);
                slot.lifetime = lifetime;
                self.stats.allocated += 1;
                let took = self.now.saturating_duration_since(slot.started);
                self.hist
                    .saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
            }
            Step::Permission => self.stats.permissions += 1,
            Step::ChannelBind => self.stats.channel_binds += 1,
            Step::Refresh => {
                slot.lifetime = lifetime.or(slot.lifetime);
                self.stats.refreshed += 1;
            }
            Step::Delete => {
                slot.relayed = None;
                self.stats.deleted += 1;
            }
        }
        self.advance(s, finished);
    }

    fn on_error(
        &mut self,
        s: usize,
        step: Step,
        msg: &Message<&[u8]>,
        finished: &mut Vec<Finished>,
    ) {
        let (code, reason) = error_code(msg);
        let rejected = || EngineError::Rejected {
            method: step.method(),
            code,
            reason: reason.to_owned(),
        };
        let nonce = msg.get::<Nonce>().ok().flatten().map(|n| n.0);
        let realm = msg.get::<Realm>().ok().flatten().map(|r| r.0);
        match code {
            401 if self.slots[s].signer.is_none() => {
                let (Some(nonce), Some(realm)) = (nonce, realm) else {
                    let e = EngineError::Protocol("401 without NONCE and REALM".into());
                    self.fail(s, &e, finished);
                    return;
                };
                let signer = match self.signers.get(realm, self.now) {
                    Ok(signer) => signer,
                    Err(e) => {
                        self.fail(s, &e, finished);
                        return;
                    }
                };
                self.stats.challenges += 1;
                let slot = &mut self.slots[s];
                slot.signer = Some(signer);
                slot.nonce.clear();
                slot.nonce.push_str(nonce);
                slot.stale = 0;
                self.send_step(s, finished);
            }
            438 if self.slots[s].stale < STALE_RETRIES && nonce.is_some() => {
                self.stats.stale_nonces += 1;
                let now = self.now;
                let signer = match (realm, &self.slots[s].signer) {
                    (Some(r), Some(sg)) if r != sg.realm => Some(self.signers.get(r, now)),
                    (Some(r), None) => Some(self.signers.get(r, now)),
                    _ => None,
                };
                let slot = &mut self.slots[s];
                match signer {
                    Some(Ok(sg)) => slot.signer = Some(sg),
                    Some(Err(e)) => {
                        self.fail(s, &e, finished);
                        return;
                    }
                    None => {}
                }
                let slot = &mut self.slots[s];
                slot.stale += 1;
                slot.nonce.clear();
                slot.nonce.push_str(nonce.unwrap_or_default());
                self.send_step(s, finished);
            }
            437 if step == Step::Allocate && self.slots[s].mismatches < MISMATCH_RETRIES => {
                self.stats.mismatch_retries += 1;
                let slot = &mut self.slots[s];
                // The server still holds the 5-tuple of an allocation this socket
                // deleted: let sockets rest (longer) before they allocate again.
                if slot.reused && slot.rested >= self.cooldown {
                    self.cooldown = if self.cooldown.is_zero() {
                        FIRST_COOLDOWN
                    } else {
                        (self.cooldown * 2).min(MAX_COOLDOWN)
                    };
                    self.stats.socket_cooldown_ms =
                        u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX);
                }
                slot.mismatches += 1;
                slot.signer = None;
                slot.nonce.clear();
                // The new socket is bound while the old one still is: another port.
                let old = slot.socket.take();
                let opened = self.open_socket(s);
                if let Some(old) = old {
                    if self.cooldown.is_zero() {
                        drop(old);
                    } else {
                        self.rest(old);
                    }
                }
                if let Err(e) = opened {
                    self.fail(s, &EngineError::Io(e), finished);
                    return;
                }
                self.send_step(s, finished);
            }
            _ => {
                let e = rejected();
                self.fail(s, &e, finished);
            }
        }
    }

    /// Moves to the next step, or ends the program successfully.
    fn advance(&mut self, s: usize, finished: &mut Vec<Finished>) {
        let slot = &mut self.slots[s];
        let Some(program) = slot.program else {
            return;
        };
        slot.step += 1;
        slot.stale = 0;
        if slot.step < program.steps().len() {
            self.send_step(s, finished);
        } else {
            self.end(s, true, finished);
        }
    }

    fn note_error(&mut self, e: &EngineError) {
        if self.stats.first_error.is_none() {
            self.stats.first_error = Some(e.to_string());
        }
    }

    /// Ends the program with an error: counts it and drops the slot's socket, so that
    /// whatever the server still holds for that 5-tuple is not reused.
    fn fail(&mut self, s: usize, e: &EngineError, finished: &mut Vec<Finished>) {
        self.note_error(e);
        let slot = &mut self.slots[s];
        let step = slot.program.map_or(Step::Allocate, |p| {
            p.steps()[slot.step.min(p.steps().len() - 1)]
        });
        match step {
            Step::Allocate => self.stats.allocate_failed += 1,
            Step::Delete => self.stats.delete_failed += 1,
            Step::Permission | Step::ChannelBind | Step::Refresh => self.stats.other_failed += 1,
        }
        slot.socket = None;
        slot.relayed = None;
        self.end(s, false, finished);
    }

    fn end(&mut self, s: usize, ok: bool, finished: &mut Vec<Finished>) {
        let slot = &mut self.slots[s];
        let Some(program) = slot.program.take() else {
            return;
        };
        slot.sent = 0;
        let pos = slot.pos;
        if self.inflight.get(pos) == Some(&s) {
            self.inflight.swap_remove(pos);
            if let Some(&moved) = self.inflight.get(pos) {
                self.slots[moved].pos = pos;
            }
        }
        finished.push(Finished {
            slot: s,
            program,
            ok,
        });
    }
}
