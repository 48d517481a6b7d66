//! The TURN requests of a [`TurnClient`] (Allocate, Refresh, CreatePermission,
//! ChannelBind, each signed after the 401 round trip and re-signed after a 438) and its
//! two ways of sending data (Send indications and ChannelData).

use std::net::SocketAddr;

use turnpike_stun::attr::{
    Lifetime, Nonce, Realm, RequestedTransport, TransportProtocol, XorMappedAddress,
    XorPeerAddress, XorRelayedAddress,
};
use turnpike_stun::{
    CHANNEL_DATA_HEADER_LEN, ChannelNumber, Class, EncodeError, Message, MessageType,
    MessageWriter, Method, write_channel_data_header,
};

use super::{
    ClientError, MISMATCH_RETRIES, TurnClient, encode_send_indication, error_code, long_term_key,
    sign,
};

impl TurnClient {
    /// Sends a request built by `body` (signed once the realm and nonce are known) and
    /// returns the success response's bytes. Answers 401 and 438 once each; any other
    /// error response is [`ClientError::Rejected`]. Public for requests this client has
    /// no method for (a TCP Allocate, Connect).
    pub fn request(
        &mut self,
        method: Method,
        body: &dyn Fn(&mut MessageWriter<'_>) -> Result<(), EncodeError>,
    ) -> Result<Vec<u8>, ClientError> {
        let mut challenged = 0;
        loop {
            let tid = self.tids.next_id();
            let mut buf = [0u8; 1024];
            let mut w =
                MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), tid)?;
            body(&mut w)?;
            if let Some(key) = &self.key {
                sign(&mut w, &self.username, &self.realm, &self.nonce, key)?;
            }
            w.put_fingerprint()?;
            let n = w.finish();
            let resp = self.transact(method, &buf[..n], tid)?;
            let msg = Message::new_checked(&resp[..])
                .map_err(|e| ClientError::Protocol(format!("bad response: {e:?}")))?;
            let class = msg.message_type().class;
            if class == Class::Success {
                if let Some(key) = &self.key {
                    if msg.verify_integrity(key).is_err() {
                        return Err(ClientError::Protocol(
                            "response MESSAGE-INTEGRITY does not verify".into(),
                        ));
                    }
                }
                return Ok(resp);
            }
            let (code, reason) = error_code(&msg);
            let reason = reason.to_owned();
            if (code == 401 || code == 438) && challenged < 2 {
                challenged += 1;
                self.challenges += 1;
                let realm = msg.get::<Realm>().ok().flatten().map(|r| r.0.to_owned());
                let nonce = msg.get::<Nonce>().ok().flatten().map(|n| n.0.to_owned());
                if let Some(nonce) = nonce {
                    self.nonce = nonce;
                }
                if let Some(realm) = realm {
                    if realm != self.realm || self.key.is_none() {
                        self.realm = realm;
                        self.key =
                            Some(long_term_key(&self.username, &self.realm, &self.password)?);
                    } else if code == 401 {
                        // Signed with the right key and still refused: wrong credentials.
                        return Err(ClientError::Rejected {
                            method,
                            code,
                            reason,
                        });
                    }
                }
                if self.key.is_some() && !self.nonce.is_empty() {
                    continue;
                }
            }
            return Err(ClientError::Rejected {
                method,
                code,
                reason,
            });
        }
    }

    /// Allocates a UDP relay with `lifetime` seconds (None: the server's default) and
    /// returns the relayed address.
    ///
    /// A 437 (Allocation Mismatch) means the server still holds an allocation for this
    /// 5-tuple, typically one just deleted on a local port the kernel handed out again
    /// (coturn keeps deleted allocations for a moment): the client then moves to a new
    /// local port and tries again, up to [`MISMATCH_RETRIES`] times.
    pub fn allocate(&mut self, lifetime: Option<u32>) -> Result<SocketAddr, ClientError> {
        let mut attempt = 0;
        let resp = loop {
            let result = self.request(Method::ALLOCATE, &|w| {
                w.put(&RequestedTransport(TransportProtocol::UDP))?;
                if let Some(l) = lifetime {
                    w.put(&Lifetime(l))?;
                }
                Ok(())
            });
            match result {
                Err(ClientError::Rejected { code: 437, .. })
                    if attempt < MISMATCH_RETRIES && self.may_rebind =>
                {
                    attempt += 1;
                    self.mismatches += 1;
                    self.rebind()?;
                }
                other => break other?,
            }
        };
        let msg =
            Message::new_checked(&resp[..]).map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        let relayed = msg
            .get::<XorRelayedAddress>()
            .ok()
            .flatten()
            .ok_or_else(|| ClientError::Protocol("no XOR-RELAYED-ADDRESS".into()))?
            .0;
        self.mapped = msg.get::<XorMappedAddress>().ok().flatten().map(|a| a.0);
        self.relayed = Some(relayed);
        Ok(relayed)
    }

    /// Refreshes the allocation; `0` deletes it. Returns the granted lifetime.
    pub fn refresh(&mut self, lifetime: u32) -> Result<u32, ClientError> {
        let resp = self.request(Method::REFRESH, &|w| w.put(&Lifetime(lifetime)))?;
        let msg =
            Message::new_checked(&resp[..]).map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        if lifetime == 0 {
            self.relayed = None;
        }
        Ok(msg
            .get::<Lifetime>()
            .ok()
            .flatten()
            .map_or(lifetime, |l| l.0))
    }

    /// Installs a permission for `peer`'s IP address.
    pub fn create_permission(&mut self, peer: SocketAddr) -> Result<(), ClientError> {
        self.request(Method::CREATE_PERMISSION, &|w| w.put(&XorPeerAddress(peer)))?;
        Ok(())
    }

    /// Binds `channel` to `peer` (this also installs a permission).
    pub fn channel_bind(
        &mut self,
        channel: ChannelNumber,
        peer: SocketAddr,
    ) -> Result<(), ClientError> {
        self.request(Method::CHANNEL_BIND, &|w| {
            w.put(&channel)?;
            w.put(&XorPeerAddress(peer))
        })?;
        Ok(())
    }

    /// Sends `data` to `peer` in a Send indication.
    pub fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) -> Result<(), ClientError> {
        let tid = self.tids.next_id();
        let mut buf = vec![0u8; data.len() + 64];
        let n = encode_send_indication(&mut buf, tid, peer, data)?;
        self.send_raw(&buf[..n])
    }

    /// Sends `data` on `channel` as ChannelData (padded to 4 bytes over a stream).
    pub fn send_channel_data(
        &mut self,
        channel: ChannelNumber,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let len = CHANNEL_DATA_HEADER_LEN + data.len();
        let padded = if self.is_stream() {
            len.next_multiple_of(4)
        } else {
            len
        };
        let mut buf = vec![0u8; padded];
        write_channel_data_header(&mut buf, channel, data.len())?;
        buf[CHANNEL_DATA_HEADER_LEN..len].copy_from_slice(data);
        self.send_raw(&buf)
    }

    /// Deletes the allocation (Refresh with lifetime 0), once: a failed attempt is not
    /// repeated by a later call.
    pub fn close(&mut self) -> Result<(), ClientError> {
        if self.relayed.take().is_some() {
            self.refresh(0)?;
        }
        Ok(())
    }
}
