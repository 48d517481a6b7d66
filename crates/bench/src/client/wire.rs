//! Message helpers the client and the engine share: transaction IDs, an error response's
//! code, and Send indications.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use turnpike_stun::attr::{Data, ErrorCodeAttr, XorPeerAddress};
use turnpike_stun::{
    Class, EncodeError, Message, MessageType, MessageWriter, Method, TransactionId,
};

/// Transaction IDs: a counter, then a salt (the clock's nanoseconds mixed with a value of
/// the caller's) that tells clients started at the same time apart.
#[derive(Debug)]
pub(crate) struct Tids {
    counter: u64,
    salt: u32,
}

impl Tids {
    pub(crate) fn new(mix: u32) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self {
            counter: 0,
            salt: nanos ^ mix,
        }
    }

    pub(crate) fn next_id(&mut self) -> TransactionId {
        self.counter += 1;
        let mut t = [0u8; 12];
        t[..8].copy_from_slice(&self.counter.to_be_bytes());
        t[8..].copy_from_slice(&self.salt.to_be_bytes());
        TransactionId(t)
    }
}

/// An error response's code and reason phrase (0 and a note when it has no ERROR-CODE).
pub(crate) fn error_code<T: AsRef<[u8]>>(msg: &Message<T>) -> (u16, &str) {
    match msg.get::<ErrorCodeAttr>() {
        Ok(Some(e)) => (e.code.code(), e.reason),
        _ => (0, "error response without ERROR-CODE"),
    }
}

/// Encodes a Send indication carrying `data` to `peer` into `buf`; returns its length.
pub fn encode_send_indication(
    buf: &mut [u8],
    tid: TransactionId,
    peer: SocketAddr,
    data: &[u8],
) -> Result<usize, EncodeError> {
    let mut w = MessageWriter::new(buf, MessageType::new(Method::SEND, Class::Indication), tid)?;
    w.put(&XorPeerAddress(peer))?;
    w.put(&Data(data))?;
    Ok(w.finish())
}

/// The length of a Send indication for `data_len` bytes of data to an IPv4 (`v6` false)
/// or IPv6 peer: header, XOR-PEER-ADDRESS, DATA (padded).
pub fn send_indication_len(data_len: usize, v6: bool) -> usize {
    20 + 4 + if v6 { 20 } else { 8 } + 4 + data_len.next_multiple_of(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_indication_length() {
        let mut buf = [0u8; 256];
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for len in [0, 1, 3, 4, 100, 101] {
            let n = encode_send_indication(&mut buf, TransactionId([1; 12]), peer, &vec![7; len])
                .unwrap();
            assert_eq!(n, send_indication_len(len, false));
        }
    }
}
