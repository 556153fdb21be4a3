//! PAGEMAP_SCAN (Linux 6.7+): ask the kernel which pages of a range are present, swapped,
//! file-backed or the zero page, as ranges instead of one pagemap word per page. Written by
//! hand: no crate wraps this ioctl.

use crate::{Errno, SysResult};
use std::os::fd::AsRawFd;

/// Page categories (`PAGE_IS_*` in linux/fs.h).
pub const PAGE_IS_WPALLOWED: u64 = 1 << 0;
pub const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub const PAGE_IS_FILE: u64 = 1 << 2;
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;
pub const PAGE_IS_PFNZERO: u64 = 1 << 5;
pub const PAGE_IS_HUGE: u64 = 1 << 6;
pub const PAGE_IS_SOFT_DIRTY: u64 = 1 << 7;
/// Linux 6.14+: a guard page (MADV_GUARD_INSTALL).
pub const PAGE_IS_GUARD: u64 = 1 << 8;

#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// One reported range of pages sharing the returned categories.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageRegion {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}

/// _IOWR('f', 16, struct pm_scan_arg)
const PAGEMAP_SCAN: libc::c_ulong = 0xC060_6610;

/// Which pages a scan selects: every category in `required` must hold after `inverted` flips
/// the listed ones, and at least one of `anyof` must hold (when non-zero).
#[derive(Debug, Clone, Copy)]
pub struct ScanQuery {
    pub inverted: u64,
    pub required: u64,
    pub anyof: u64,
    pub returned: u64,
}

/// `ioctl(pagemap_fd, PAGEMAP_SCAN, &arg)` over `[start, end)`, following `walk_end` until the
/// whole range is walked. `pagemap` is an open `/proc/PID/pagemap`.
/// See [the kernel's pagemap doc](https://docs.kernel.org/admin-guide/mm/pagemap.html).
pub fn scan(
    pagemap: &impl AsRawFd,
    start: u64,
    end: u64,
    q: ScanQuery,
    out: &mut Vec<PageRegion>,
) -> SysResult<()> {
    let mut buf = vec![PageRegion::default(); 1024];
    let mut cur = start;
    while cur < end {
        let mut arg = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            start: cur,
            end,
            vec: buf.as_mut_ptr() as u64,
            vec_len: buf.len() as u64,
            category_inverted: q.inverted,
            category_mask: q.required,
            category_anyof_mask: q.anyof,
            return_mask: q.returned,
            ..Default::default()
        };
        // SAFETY: `arg` is a valid pm_scan_arg whose `vec` points at `buf`, writable for
        // `vec_len` page_region records; both outlive the call.
        let r = unsafe {
            libc::ioctl(
                pagemap.as_raw_fd(),
                PAGEMAP_SCAN,
                &mut arg as *mut PmScanArg,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
        out.extend_from_slice(&buf[..r as usize]);
        if arg.walk_end <= cur {
            break;
        }
        cur = arg.walk_end;
    }
    Ok(())
}
