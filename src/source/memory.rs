//! A source of frames held in memory: test fixtures and fuzzing.

use super::{PacketSource, RawPacket};
use crate::error::Error;
use crate::model::Nanos;
use crate::wire::LinkType;

#[derive(Debug, Clone)]
pub struct MemorySource {
    link: LinkType,
    frames: Vec<(Nanos, Vec<u8>)>,
    next: usize,
}

impl MemorySource {
    pub fn new(link: LinkType, frames: Vec<(Nanos, Vec<u8>)>) -> Self {
        MemorySource {
            link,
            frames,
            next: 0,
        }
    }
}

impl PacketSource for MemorySource {
    fn link_type(&self) -> LinkType {
        self.link
    }

    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, Error> {
        let Some((ts, data)) = self.frames.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        Ok(Some(RawPacket {
            ts: *ts,
            len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            data,
            link: self.link,
        }))
    }
}
