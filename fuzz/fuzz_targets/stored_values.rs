//! What ingot reads back from its own state and topics, where a corrupt or foreign value
//! can sit: the processor's stored versions (RocksDB and `ingot.processor.versions`),
//! sealed secrets (`ingot.connections`, `ingot.webhook-endpoints`) and dead-letter source
//! headers (`raw.dlq`). Never a panic; a version that decodes re-encodes to the same bytes.
#![no_main]

use ingot_model::{dlq, Keyring, Secret, Version};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        Keyring::from_specs([&Secret::new("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")])
            .expect("a valid key spec")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Some(version) = Version::from_bytes(data) {
        if data.len() == Version::ENCODED_LEN {
            assert_eq!(&version.to_bytes()[..], data, "a decoded version re-encodes");
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = keyring().open("connection:conn-1", &text);
    if let Some((topic, partition, offset)) = dlq::parse_source(&text) {
        let printed = dlq::source(&topic, partition, offset);
        assert_eq!(
            dlq::parse_source(&printed),
            Some((topic, partition, offset)),
            "a parsed source prints back to itself"
        );
    }
});
