//! Every provider's mapping on arbitrary input: never a panic, and a record only for a
//! topic the mapping routes, of the model that topic routes to.
//!
//! Input: byte 0 picks the provider, the bytes up to the next NUL are the 3PA topic (so
//! the fuzzer finds topics by itself through libFuzzer's comparison tracing), the rest is
//! the payload. `scripts/fuzz.sh` seeds the corpus from the shared fixtures in this form.
#![no_main]

use ingot_model::{Provider, RawEvent};
use ingot_standardize::{mapping_for, Outcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let provider = Provider::ALL[pick as usize % Provider::ALL.len()];
    let (topic, payload) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };
    let topic = String::from_utf8_lossy(topic).into_owned();
    let mapping = mapping_for(provider);
    let event = RawEvent {
        event_id: "evt-fuzz".into(),
        tenant_id: "acme".into(),
        connection_id: "conn-1".into(),
        provider: provider.as_str().into(),
        topic: topic.clone(),
        source: "webhook".into(),
        api_version: None,
        received_at: "2026-01-01T00:00:00Z".into(),
        triggered_at: None,
        payload: payload.to_vec(),
    };
    match mapping.standardize(&event) {
        Ok(Outcome::Record(record)) => {
            assert!(!record.remote_id().is_empty(), "{topic}: a record without a remote id");
            let routed = mapping.route(&topic).map(|(model, _)| model);
            assert_eq!(routed, Some(record.model()), "{topic}: a record of another model");
        }
        Ok(Outcome::Skip(_)) | Err(_) => {}
    }
});
