//! The dead-letter topic: what every stage writes there, one definition for all.
//!
//! A dead letter is the original message (its key and bytes, untouched) with three
//! headers: why ([`HEADER_REASON`]), where it was read (`<topic>/<partition>@<offset>`,
//! [`HEADER_SOURCE`]) and which stage gave up on it ([`HEADER_STAGE`]). The processor's
//! are raw events that did not standardize (a replay with `--dlq` redrives them); the
//! materializer's and the forwarder's are normalized records they could not use (each
//! stage letters its own, so one bad normalized record can appear once per stage).

/// The dead-letter topic.
pub const TOPIC: &str = "raw.dlq";
/// Why the stage gave up (UTF-8 text).
pub const HEADER_REASON: &str = "ingot-dlq-reason";
/// Where the message was read: `<topic>/<partition>@<offset>`.
pub const HEADER_SOURCE: &str = "ingot-source";
/// The stage that wrote the dead letter ([`Stage::as_str`]). Letters written before this
/// header existed have none: their source topic tells (a raw topic: the processor).
pub const HEADER_STAGE: &str = "ingot-dlq-stage";

/// The stage that dead-lettered a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Processor,
    Materializer,
    Forwarder,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Processor => "processor",
            Stage::Materializer => "materializer",
            Stage::Forwarder => "forwarder",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        [Stage::Processor, Stage::Materializer, Stage::Forwarder]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A dead letter's source position, `<topic>/<partition>@<offset>`.
pub fn source(topic: &str, partition: i32, offset: i64) -> String {
    format!("{topic}/{partition}@{offset}")
}

/// Reads [`source`]'s format back; `None` for anything else.
pub fn parse_source(s: &str) -> Option<(String, i32, i64)> {
    let (tp, off) = s.rsplit_once('@')?;
    let (t, p) = tp.rsplit_once('/')?;
    Some((t.to_string(), p.parse().ok()?, off.parse().ok()?))
}

/// The headers of a dead letter.
pub fn headers(stage: Stage, reason: &str, source: &str) -> [(&'static str, Vec<u8>); 3] {
    [
        (HEADER_REASON, reason.as_bytes().to_vec()),
        (HEADER_SOURCE, source.as_bytes().to_vec()),
        (HEADER_STAGE, stage.as_str().as_bytes().to_vec()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_round_trips_topics_with_slashes_and_dots() {
        let s = source("raw.shopify", 3, 41);
        assert_eq!(s, "raw.shopify/3@41");
        assert_eq!(parse_source(&s), Some(("raw.shopify".into(), 3, 41)));
        assert_eq!(parse_source("a/b/7@9"), Some(("a/b".into(), 7, 9)));
        assert_eq!(parse_source("raw.shopify@41"), None);
        assert_eq!(parse_source("raw.shopify/x@41"), None);
    }

    #[test]
    fn stages_parse_back() {
        for st in [Stage::Processor, Stage::Materializer, Stage::Forwarder] {
            assert_eq!(Stage::parse(st.as_str()), Some(st));
        }
        assert_eq!(Stage::parse("ingest"), None);
    }
}
