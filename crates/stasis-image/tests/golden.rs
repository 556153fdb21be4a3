//! Golden images of every released format version must keep decoding, with stasis-image alone.

use stasis_image::{FileKindEntry, Image, VmaKind};
use std::path::PathBuf;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

#[test]
fn v1_0_counter_static_decodes_and_verifies() {
    let img = Image::open(&golden("v1.0/counter-static")).expect("golden v1.0 image decodes");
    assert_eq!(img.inventory.arch, "x86_64");
    assert_eq!(img.inventory.pids, vec![img.inventory.root_pid]);
    let p = &img.processes[0];
    assert_eq!(p.comm, "counter");
    assert_eq!(p.threads.len(), 1);
    assert!(p.threads[0].xstate.len() >= 512, "an XSAVE area");
    assert!(p.vmas.iter().any(|v| v.kind == VmaKind::Vdso));
    assert!(p.vmas.iter().any(|v| v.path.as_deref() == Some("[stack]")));
    assert!(p.fds.iter().any(|f| f.fd == 1));
    assert!(img
        .files
        .files
        .iter()
        .any(|f| matches!(f.kind, FileKindEntry::External { .. })));
    let bytes = img.verify_pages().expect("page checksums hold");
    assert_eq!(bytes, img.pagemaps[0].total_pages() * 4096);
    assert!(bytes > 0);
}
