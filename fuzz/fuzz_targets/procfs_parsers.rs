//! Every /proc parser, fed arbitrary text: must return Ok or Err, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stasis_procfs::*;

fuzz_target!(|data: &[u8]| {
    let _ = auxv::parse_auxv(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = maps::parse_maps(text);
        let _ = smaps::parse_smaps(text);
        let _ = status::parse_status(text);
        let _ = stat::parse_stat(text);
        let _ = fdinfo::parse_fdinfo(text);
        let _ = limits::parse_limits(text);
    }
});
