//! The record decoders behind a valid header, frame and checksum: the first input byte picks
//! the record kind, the rest is the payload, so fuzzing reaches the CBOR decoders and the
//! structural checks instead of stopping at the magic and CRC. Seeds: the payloads of the
//! golden images (scripts/test extracts them). Must return Ok or Err, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stasis_image::*;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let kind = match pick % 4 {
        0 => FileKind::Inventory,
        1 => FileKind::Process,
        2 => FileKind::PageIndex,
        _ => FileKind::Files,
    };
    let mut file = Header::new(kind).encode().to_vec();
    encode_frame(payload, &mut file);
    let p = Path::new("fuzz");
    match kind {
        FileKind::Inventory => {
            let _ = decode_record::<InventoryEntry>(p, &file, kind);
        }
        FileKind::Process => {
            if let Ok(pe) = decode_record::<ProcessEntry>(p, &file, kind) {
                let _ = walk(&pe);
            }
        }
        FileKind::PageIndex => {
            if let Ok(pm) = decode_record::<PageIndexEntry>(p, &file, kind) {
                let _ = check_page_index(p, pm.pid, &pm);
                let _ = (pm.total_pages(), pm.stored_bytes());
            }
        }
        _ => {
            if let Ok(fe) = decode_record::<FilesEntry>(p, &file, kind) {
                for f in &fe.files {
                    let _ = (f.kind.describe(), f.kind.tag(), f.kind.blobs().len());
                }
            }
        }
    }
});

/// Touch what restore derives from a process record without a process.
fn walk(pe: &ProcessEntry) -> usize {
    pe.vmas.len() + pe.threads.len() + pe.fds.len()
}
