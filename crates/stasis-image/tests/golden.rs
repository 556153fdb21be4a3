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

/// Damaged records never panic the decoder: every single-byte change of a real process record
/// is either refused with an error or (in the checksum-free header padding) still decodes.
#[test]
fn damaged_records_are_refused_without_panicking() {
    use stasis_image::{decode_record, FileKind, ProcessEntry};
    let dir = golden("v1.0/counter-static");
    let name = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("process-"))
        .unwrap();
    let path = dir.join(&name);
    let good = std::fs::read(&path).unwrap();
    decode_record::<ProcessEntry>(&path, &good, FileKind::Process).unwrap();
    let mut refused = 0;
    for i in (0..good.len()).step_by(7) {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            if decode_record::<ProcessEntry>(&path, &bad, FileKind::Process).is_err() {
                refused += 1;
            }
        }
        // Every truncation is refused.
        assert!(decode_record::<ProcessEntry>(&path, &good[..i], FileKind::Process).is_err());
    }
    assert!(
        refused > good.len() / 3,
        "checksums catch damage ({refused} refused)"
    );
}

#[test]
fn v1_1_compressed_counter_decodes_and_verifies() {
    let img = Image::open(&golden("v1.1/counter-static-lz4")).expect("golden v1.1 image decodes");
    let pm = &img.pagemaps[0];
    assert!(
        pm.runs.iter().any(|r| r.lz4_len != 0),
        "has compressed runs"
    );
    assert!(pm.stored_bytes() < pm.total_pages() * 4096);
    let bytes = img
        .verify_pages()
        .expect("compressed runs decode and match their checksums");
    assert_eq!(bytes, pm.total_pages() * 4096);
}

#[test]
fn v1_2_tree_with_copy_on_write_pages_decodes_and_verifies() {
    let img = Image::open(&golden("v1.2/tree")).expect("golden v1.2 image decodes");
    assert_eq!(img.processes.len(), 5);
    // Children keep pages they share with their parent in the parent's page file only.
    let child = &img.processes[1];
    assert!(
        child.vmas.iter().any(|v| !v.cow.is_empty()),
        "a child marks pages shared with its parent"
    );
    assert!(img.processes[0].vmas.iter().all(|v| v.cow.is_empty()));
    img.verify_pages().expect("every run matches its checksum");
}

#[test]
fn v1_3_pending_timer_signal_is_timer_state() {
    let img = Image::open(&golden("v1.3/pending-timer")).expect("golden v1.3 image decodes");
    let p = &img.processes[0];
    let d = p
        .posix_timers
        .iter()
        .find(|t| t.interval_ns == 1_000_000)
        .expect("timer D");
    assert_eq!(d.pending_overrun, Some(268));
    assert_eq!(d.signo, 35);
    // Its signal is timer state, not a queued signal.
    assert!(p.shared_pending.iter().all(|s| s.signo() != 35));
    assert!(p
        .posix_timers
        .iter()
        .filter(|t| t.id != d.id)
        .all(|t| t.pending_overrun.is_none()));
    img.verify_pages().expect("every run matches its checksum");
}

#[test]
fn v1_4_stdio_as_files_and_a_sparse_ghost() {
    let img = Image::open(&golden("v1.4/ghost")).expect("golden v1.4 image decodes");
    let p = &img.processes[0];
    let file = |fd: i32| {
        let id = p.fds.iter().find(|f| f.fd == fd).expect("fd saved").file_id;
        img.files.files.iter().find(|f| f.id == id).unwrap()
    };
    // stdout is the log file it was, by path, with the name --inherit-fd would match.
    assert!(matches!(&file(1).kind, FileKindEntry::Path { path, .. } if path.ends_with("/log")));
    assert_eq!(file(1).link.as_deref(), Some("/tmp/g14/log"));
    // The sparse ghost: 8 KiB of data in two runs around a 64 MiB hole, owner and times kept.
    let FileKindEntry::Deleted {
        size,
        extents,
        owner,
        times,
        content,
        ..
    } = &file(4).kind
    else {
        panic!("fd 4 is the deleted sparse file")
    };
    assert_eq!(*size, Some(2 * 4096 + (64 << 20)));
    assert_eq!(extents, &vec![(0, 4096), (4096 + (64 << 20), 4096)]);
    assert_eq!(content.len, 8192);
    assert_eq!(*owner, Some((1234, 4321)));
    assert_eq!(times.unwrap()[1], (1234567890, 123456789));
    img.verify_pages().expect("every run matches its checksum");
}

/// Every golden image passes `verify` (pages and blobs), and every golden record's payload,
/// framed again behind a fresh header (what the framed_records fuzz target does with its
/// seeds, which scripts/test cuts out of these files at the same offsets), decodes.
#[test]
fn golden_payloads_reframed_decode_and_images_verify() {
    use stasis_image::*;
    let mut seen = 0;
    for v in std::fs::read_dir(golden("")).unwrap() {
        for img_dir in std::fs::read_dir(v.unwrap().path()).unwrap() {
            let dir = img_dir.unwrap().path();
            Image::open(&dir).unwrap().verify().unwrap();
            for f in std::fs::read_dir(&dir).unwrap() {
                let path = f.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                let record = name == "inventory"
                    || name == "files"
                    || name.starts_with("process-")
                    || name.starts_with("pagemap-");
                if !record {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                let payload = &bytes[HEADER_LEN + 4..bytes.len() - 4];
                let frame = |kind: FileKind| {
                    let mut b = Header::new(kind).encode().to_vec();
                    encode_frame(payload, &mut b);
                    b
                };
                let p = std::path::Path::new(&name);
                let ok = if name == "inventory" {
                    decode_record::<InventoryEntry>(
                        p,
                        &frame(FileKind::Inventory),
                        FileKind::Inventory,
                    )
                    .is_ok()
                } else if name == "files" {
                    decode_record::<FilesEntry>(p, &frame(FileKind::Files), FileKind::Files).is_ok()
                } else if name.starts_with("process-") {
                    decode_record::<ProcessEntry>(p, &frame(FileKind::Process), FileKind::Process)
                        .is_ok()
                } else if name.starts_with("pagemap-") {
                    let pm = decode_record::<PageIndexEntry>(
                        p,
                        &frame(FileKind::PageIndex),
                        FileKind::PageIndex,
                    );
                    pm.is_ok_and(|pm| check_page_index(p, pm.pid, &pm).is_ok())
                } else {
                    continue;
                };
                assert!(ok, "{}", path.display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 20, "only {seen} golden records");
}
