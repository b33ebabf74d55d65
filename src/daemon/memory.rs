//! Giving memory back after a flood. The allocator keeps freed memory for
//! reuse, so a daemon that held a thousand registrations for a moment
//! would keep that footprint for good; after a large drop the service asks
//! the allocator to return what it no longer uses.

/// Registrations below which nothing is worth trimming.
const WORTH_TRIMMING: usize = 64;

/// Follows the number of registrations and says when it fell far enough
/// (to half of its high-water mark) for a trim to pay off.
#[derive(Debug, Default)]
pub(crate) struct Shrinkage {
    high_water: usize,
}

impl Shrinkage {
    /// Notes the current count; `true` when memory should be given back.
    pub(crate) fn note(&mut self, count: usize) -> bool {
        self.high_water = self.high_water.max(count);
        if self.high_water >= WORTH_TRIMMING && count * 2 < self.high_water {
            self.high_water = count;
            return true;
        }
        false
    }
}

/// Returns the allocator's free memory to the kernel (glibc's
/// `malloc_trim`); elsewhere a no-op.
pub(crate) fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists under
    // its own lock; it takes no pointers from us and is safe to call from
    // any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_large_drop_trims() {
        let mut shrinkage = Shrinkage::default();
        assert!(!shrinkage.note(10));
        assert!(!shrinkage.note(5), "too small to matter");
        assert!(!shrinkage.note(1000));
        assert!(!shrinkage.note(600));
        assert!(shrinkage.note(400), "under half of 1000");
        assert!(!shrinkage.note(300), "the mark restarts at 400");
        assert!(shrinkage.note(100));
    }
}
