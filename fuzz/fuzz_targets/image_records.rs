//! Every image record decoder, fed arbitrary bytes: must return Ok or Err, never panic or
//! allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stasis_image::*;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz");
    let _ = decode_record::<InventoryEntry>(p, data, FileKind::Inventory);
    let _ = decode_record::<ProcessEntry>(p, data, FileKind::Process);
    let _ = decode_record::<FilesEntry>(p, data, FileKind::Files);
    let _ = decode_record::<PageIndexEntry>(p, data, FileKind::PageIndex);
    let _ = decode_frame(data);
    let _ = Header::decode(data);
});
