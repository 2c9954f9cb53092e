//! Helpers shared by the training tests.
use geomem_nets::LogRow;
use std::ops::ControlFlow;

/// Runs `f` in a rayon pool of `threads` threads.
pub fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

/// A log callback that records the step of every metric row in `seen` and stops the run (as
/// a crash would) at the first row of step `stop` or later.
pub fn stop_at(stop: u64, seen: &mut Vec<u64>) -> impl FnMut(&LogRow) -> ControlFlow<()> + '_ {
    move |r| {
        seen.push(r.step);
        if r.step >= stop {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}
