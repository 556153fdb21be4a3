//! One module per resource kind, dump and restore side by side. Each pairs with the entry type
//! of the same name in stasis-image.

pub mod aio;
pub mod cgroups;
pub mod files;
pub mod memory;
pub mod process;
pub mod signal;
pub mod sysvshm;
pub mod thread;
