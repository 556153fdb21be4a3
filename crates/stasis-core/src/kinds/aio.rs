//! AIO completion rings (io_setup(2)): the mapping the kernel makes for an AIO context, shown
//! as `/[aio] (deleted)`. Its address is the context id the process passes to io_submit and
//! io_getevents, so restore must bring a ring back at the very same address.
//!
//! Dump saves the ring's bytes (header and events) and the nr_events that makes io_setup
//! allocate a ring of the same size. Restore makes a new context inside the process (remote
//! io_setup), moves the kernel's private tail to the saved one by completing dummy requests
//! (1-byte writes to /dev/null complete at submission), copies the saved events, and moves the
//! ring to its saved address with mremap: the kernel follows the move and the context takes
//! the new address as its id. This module must not touch the ring's pages through the page
//! index: they are not the process's memory but the kernel's, recreated only by io_setup.
//!
//! Requests still in flight at dump time are invisible from outside the kernel (neither the
//! ring nor /proc shows them); their completions would be lost. Rings whose header is not a
//! sane kernel ring are refused.

use crate::scratch::Scratch;
use crate::tracee::{Tracee, TraceeError};
use stasis_image::{AioRingEntry, VmaEntry, PAGE_SIZE};

#[derive(Debug, thiserror::Error)]
pub enum AioError {
    #[error("pid {pid}: the AIO ring at {start:#x}-{end:#x} {why}")]
    Ring {
        pid: i32,
        start: u64,
        end: u64,
        why: String,
    },
    #[error("pid {pid}: restoring the AIO ring at {start:#x}: {step}")]
    Restore {
        pid: i32,
        start: u64,
        step: &'static str,
        #[source]
        source: TraceeError,
    },
}

type Result<T, E = AioError> = std::result::Result<T, E>;

/// `struct aio_ring` (the header) and `struct io_event` sizes.
const HEADER: u64 = 32;
const EVENT: u64 = 32;
/// `AIO_RING_MAGIC`.
const MAGIC: u32 = 0xa10a_10a1;
/// `IOCB_CMD_PWRITE`.
const IOCB_CMD_PWRITE: u16 = 1;
/// Pointers per io_submit while moving the tail (they sit in the scratch area).
const SUBMIT_CHUNK: u64 = 1024;
/// Where, in the scratch area, the iocb, its pointers and the path go.
const IOCB_AT: u64 = 64;
const BYTE_AT: u64 = 128;
const PATH_AT: u64 = 256;
const PTRS_AT: u64 = 4096;

/// The nr_events that makes io_setup allocate a ring of `len` bytes. The kernel doubles what
/// it is asked for (at least 4 per possible CPU), adds 2 and rounds the ring up to whole pages,
/// then uses every event slot the pages hold: going back from that count gives a request
/// that grows to the same number of pages (as CRIU's aio_estimate_nr_reqs).
pub fn nr_req(len: u64) -> u32 {
    let events = (len / PAGE_SIZE * PAGE_SIZE).saturating_sub(HEADER) / EVENT;
    (events.saturating_sub(2) / 2) as u32
}

/// The header words of a ring: (nr, head, tail, magic, header_length).
fn header(ring: &[u8]) -> (u32, u32, u32, u32, u32) {
    let w = |i: usize| u32::from_le_bytes(ring[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    (w(1), w(2), w(3), w(4), w(7))
}

/// Save the ring `v` of the process into `v.aio`.
pub fn dump(t: &impl Tracee, v: &mut VmaEntry) -> Result<()> {
    let pid = t.pid();
    let bad = |why: String| AioError::Ring {
        pid,
        start: v.start,
        end: v.end,
        why,
    };
    if v.len() < PAGE_SIZE {
        return Err(bad("is smaller than a page".into()));
    }
    let mut ring = vec![0u8; v.len() as usize];
    t.read_mem(v.start, &mut ring)
        .map_err(|source| AioError::Restore {
            pid,
            start: v.start,
            step: "reading it",
            source,
        })?;
    let (nr, head, tail, magic, hlen) = header(&ring);
    let slots = (v.len() - HEADER) / EVENT;
    if magic != MAGIC || hlen as u64 != HEADER || nr as u64 != slots || head >= nr || tail >= nr {
        return Err(bad(format!(
            "is not a ring this kernel made (magic {magic:#x}, header {hlen}, nr {nr}, head {head}, tail {tail}); it cannot be saved"
        )));
    }
    v.aio = Some(AioRingEntry {
        nr_req: nr_req(v.len()),
        ring,
    });
    Ok(())
}

/// Make the ring `v` again in the process and put it at its saved address. `v.start` must be
/// free or hold a placeholder mapping (replaced by the final move).
pub fn restore(t: &mut impl Tracee, s: Scratch, v: &VmaEntry) -> Result<()> {
    let pid = t.pid();
    let Some(saved) = &v.aio else {
        return Err(AioError::Ring {
            pid,
            start: v.start,
            end: v.end,
            why: "has no saved ring in the image".into(),
        });
    };
    let step = |step: &'static str| {
        move |source| AioError::Restore {
            pid,
            start: v.start,
            step,
            source,
        }
    };
    // A placeholder at the saved address, so that the kernel puts the new ring elsewhere
    // (mremap cannot move a ring onto a range it overlaps).
    t.syscall(
        "mmap (AIO ring placeholder)",
        libc::SYS_mmap,
        [
            v.start,
            v.len(),
            libc::PROT_NONE as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE)
                as u64,
            u64::MAX,
            0,
        ],
    )
    .map_err(step("mapping a placeholder"))?;
    t.write_mem(s.addr, &0u64.to_le_bytes())
        .map_err(step("writing io_setup's argument"))?;
    t.syscall(
        "io_setup",
        libc::SYS_io_setup,
        [saved.nr_req as u64, s.addr, 0, 0, 0, 0],
    )
    .map_err(step("io_setup"))?;
    let mut b = [0u8; 8];
    t.read_mem(s.addr, &mut b)
        .map_err(step("reading the new context"))?;
    let ctx = u64::from_le_bytes(b);
    let mut now = [0u8; HEADER as usize];
    t.read_mem(ctx, &mut now)
        .map_err(step("reading the new ring"))?;
    let (nr, head, tail, ..) = header(&saved.ring);
    let (new_nr, ..) = header(&now);
    if new_nr != nr {
        return Err(AioError::Ring {
            pid,
            start: v.start,
            end: v.end,
            why: format!(
                "had {nr} event slots but io_setup({}) made {new_nr} here; the kernels differ",
                saved.nr_req
            ),
        });
    }
    if head != 0 || tail != 0 {
        move_tail(t, s, v, ctx, nr, head, tail)?;
    }
    t.write_mem(ctx + HEADER, &saved.ring[HEADER as usize..])
        .map_err(step("writing the saved events"))?;
    let at = t
        .syscall(
            "mremap (AIO ring)",
            libc::SYS_mremap,
            [
                ctx,
                v.len(),
                v.len(),
                (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                v.start,
                0,
            ],
        )
        .map_err(step("moving the ring to its saved address"))?;
    if at != v.start {
        return Err(AioError::Ring {
            pid,
            start: v.start,
            end: v.end,
            why: format!("was moved to {at:#x} instead"),
        });
    }
    Ok(())
}

/// Bring the kernel's tail of the new ring `ctx` to `tail` (and the head to `head`): submit
/// 1-byte writes to /dev/null, each of which completes at once and adds an event. When the
/// saved tail is behind the head, the ring went around: go around once too, so the kernel's
/// count of completed events matches. The head is moved along by hand (what io_getevents
/// would do) so that the kernel always finds free slots.
fn move_tail(
    t: &mut impl Tracee,
    s: Scratch,
    v: &VmaEntry,
    ctx: u64,
    nr: u32,
    head: u32,
    tail: u32,
) -> Result<()> {
    let pid = t.pid();
    let step = |step: &'static str| {
        move |source| AioError::Restore {
            pid,
            start: v.start,
            step,
            source,
        }
    };
    t.write_mem(s.at(PATH_AT), b"/dev/null\0")
        .map_err(step("writing a path"))?;
    let fd = t
        .syscall(
            "openat(/dev/null)",
            libc::SYS_openat,
            [
                libc::AT_FDCWD as u64,
                s.at(PATH_AT),
                (libc::O_WRONLY | libc::O_CLOEXEC) as u64,
                0,
                0,
                0,
            ],
        )
        .map_err(step("opening /dev/null"))?;
    // struct iocb: aio_data, aio_key|aio_rw_flags, opcode|reqprio|fildes, buf, nbytes,
    // offset, reserved2, flags|resfd.
    let mut iocb = [0u8; 64];
    iocb[16..18].copy_from_slice(&IOCB_CMD_PWRITE.to_le_bytes());
    iocb[20..24].copy_from_slice(&(fd as u32).to_le_bytes());
    iocb[24..32].copy_from_slice(&s.at(BYTE_AT).to_le_bytes());
    iocb[32..40].copy_from_slice(&1u64.to_le_bytes());
    let moved = (|| -> Result<()> {
        t.write_mem(s.at(IOCB_AT), &iocb)
            .map_err(step("writing the iocb"))?;
        let chunk = SUBMIT_CHUNK.min(nr as u64 - 1).max(1);
        let ptrs: Vec<u8> = (0..chunk)
            .flat_map(|_| s.at(IOCB_AT).to_le_bytes())
            .collect();
        t.write_mem(s.at(PTRS_AT), &ptrs)
            .map_err(step("writing the iocb pointers"))?;
        let count = if tail < head { nr + tail } else { tail } as u64;
        let mut done = 0u64;
        while done < count {
            let n = t
                .syscall(
                    "io_submit",
                    libc::SYS_io_submit,
                    [ctx, (count - done).min(chunk), s.at(PTRS_AT), 0, 0, 0],
                )
                .map_err(step("io_submit of a dummy request"))?;
            if n == 0 {
                return Err(AioError::Ring {
                    pid,
                    start: v.start,
                    end: v.end,
                    why: "took no dummy request while its tail was being moved".into(),
                });
            }
            done += n;
            // Consume what completed (up to the saved head), freeing slots for the rest.
            let h = done.min(head as u64) as u32;
            t.write_mem(ctx + 8, &h.to_le_bytes())
                .map_err(step("moving the head"))?;
        }
        Ok(())
    })();
    let closed = t.syscall("close", libc::SYS_close, [fd, 0, 0, 0, 0, 0]);
    moved?;
    closed.map_err(step("closing /dev/null"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nr_req_grows_back_to_the_same_ring() {
        // io_setup(64) on a machine with <= 8 CPUs: 130 events -> 2 pages -> 255 slots.
        assert_eq!(nr_req(8192), 126);
        // io_setup(126): 254 events, still 2 pages.
        let events = 126 * 2 + 2;
        assert_eq!((HEADER + events * EVENT).div_ceil(PAGE_SIZE), 2);
        assert_eq!(nr_req(4096), 62);
    }
}
