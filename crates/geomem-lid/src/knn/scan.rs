//! The screening products, tile by tile: a query block against the whole reference, or on
//! one data set the lower block triangle in the rounds of a round-robin tournament.

use super::amx;
use super::lattice;
use super::points::{Points, Prepared, Screen};
use super::screen::{update_cols, update_rows};
use super::top::Sink;
use faer::prelude::{IntoConst, ReborrowMut};
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

/// The most points per side of a tile: one tile of products (256 KB) stays in a core's
/// cache while it is filtered.
pub(super) const TILE: usize = 256;

/// A thread's scratch: the tile's products and, on AMX, the groups of its row points.
struct Buffer {
    g: Vec<f32>,
    groups: amx::Groups,
}

/// `x_a · y_b` for the points `a` of `x` (rows of the tile) and `b` of `y` (columns), into
/// `buf` (grown as needed).
fn tile<'a>(buf: &'a mut Buffer, x: &Points<'_>, a: Range<usize>, y: &Points<'_>, b: Range<usize>) -> MatRef<'a, f32> {
    let Buffer { g: buf, groups } = buf;
    let (ra, rb) = (a.len(), b.len());
    let tiled = matches!(x.screen, Screen::Bf16(_) | Screen::I8(_));
    let len = if tiled { TILE * rb.next_multiple_of(amx::STEP) } else { ra * rb };
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    match (&x.screen, &y.screen) {
        (Screen::Bf16(xs), Screen::Bf16(ys)) => {
            xs.groups_into(a.clone(), groups);
            amx::tile(buf, TILE, groups, a, ys, b);
            MatRef::from_column_major_slice_with_stride(&buf[..], ra, rb, TILE)
        }
        (Screen::I8(xs), Screen::I8(ys)) => {
            lattice::tile(buf, TILE, xs, a, ys, b);
            MatRef::from_column_major_slice_with_stride(&buf[..], ra, rb, TILE)
        }
        (Screen::F32(xs), Screen::F32(ys)) => {
            let mut g = MatMut::from_column_major_slice_mut(&mut buf[..ra * rb], ra, rb);
            let (lhs, rhs) = (xs.mat().subcols(a.start, ra).transpose(), ys.mat().subcols(b.start, rb));
            faer::linalg::matmul::matmul(g.rb_mut(), Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
            g.into_const()
        }
        _ => unreachable!("both point sets share one frame"),
    }
}

/// One tile buffer per thread of the current pool, allocated on first use (small searches
/// need only small tiles).
struct Buffers(Vec<Mutex<Buffer>>);

impl Buffers {
    fn new() -> Self {
        let empty = || Mutex::new(Buffer { g: Vec::new(), groups: amx::Groups::new() });
        Self((0..rayon::current_num_threads()).map(|_| empty()).collect())
    }

    fn get(&self) -> MutexGuard<'_, Buffer> {
        let slot = &self.0[rayon::current_thread_index().unwrap_or(0) % self.0.len()];
        // A buffer holds no invariant, so one left by a panicking task is still usable.
        lock(slot)
    }
}

/// The screen of every query against the reference (`same`: the queries themselves).
pub(super) fn scan<S: Sink + Send>(tops: &mut [S], p: &Prepared<'_>, same: bool) {
    if same {
        scan_self(tops, p);
    } else {
        scan_cross(tops, p);
    }
}

/// Queries against a different reference: each task owns a block of queries and runs
/// through the reference one tile at a time.
fn scan_cross<S: Sink + Send>(tops: &mut [S], p: &Prepared<'_>) {
    let r = p.reference();
    let (nq, nr) = (tops.len(), r.norms.len());
    let bufs = Buffers::new();
    tops.par_chunks_mut(TILE).enumerate().for_each(|(b, chunk)| {
        let mut buf = bufs.get();
        let bq = b * TILE..(b * TILE + TILE).min(nq);
        for a in (0..nr).step_by(TILE) {
            let ar = a..(a + TILE).min(nr);
            let g = tile(&mut buf, r, ar.clone(), &p.q, bq.clone());
            update_cols(chunk, g, p.q.refs(bq.clone()), r.refs(ar), r.max_norm, p.pair, None);
        }
    });
}

/// Blocks of at most [`TILE`] points, starting at multiples of 32 (as AMX tiles need), their
/// number a multiple of 4 where the points allow: the rounds of [`round_robin`] then hold an
/// even number of tiles, nearly all of one size.
fn blocks(n: usize) -> Vec<Range<usize>> {
    let count = n.div_ceil(TILE).next_multiple_of(4).min(n);
    let size = n.div_ceil(count).next_multiple_of(32);
    (0..n).step_by(size).map(|a| a..(a + size).min(n)).collect()
}

/// One data set: only the tiles of the lower block triangle are multiplied, each updating
/// the points of both its blocks. The diagonal tiles come first; then each thread takes, as
/// it comes free, the first tile not yet taken (in the rounds of a round-robin tournament,
/// every pair of blocks once) whose blocks no other thread holds: no thread waits for a
/// round's slowest tile. The order in which a point sees the tiles may then differ from run
/// to run; the result does not (the refinement makes it exact whatever the candidates).
fn scan_self<S: Sink + Send>(tops: &mut [S], p: &Prepared<'_>) {
    let (x, rmax) = (&p.q, p.q.max_norm);
    let blocks = blocks(x.norms.len());
    let bufs = Buffers::new();
    // The diagonal tiles first: each block against itself.
    split(tops, &blocks).into_par_iter().zip(&blocks).for_each(|(chunk, a)| {
        let mut buf = bufs.get();
        let g = tile(&mut buf, x, a.clone(), x, a.clone());
        let chunk = chunk.expect("every block");
        update_cols(chunk, g, p.q.refs(a.clone()), p.q.refs(a.clone()), rmax, p.pair, Some(0));
    });
    if blocks.len() < 2 {
        return;
    }
    let slots: Vec<Mutex<Option<&mut [S]>>> = split(tops, &blocks).into_iter().map(Mutex::new).collect();
    let schedule = Mutex::new(Schedule::new(round_robin(blocks.len()).concat(), blocks.len()));
    let one = |(a, b): (usize, usize)| {
        let (mut ta, mut tb) = (lock(&slots[a]), lock(&slots[b]));
        let (ta, tb) = (ta.as_deref_mut().expect("a block"), tb.as_deref_mut().expect("a block"));
        let (a, b) = (blocks[a].clone(), blocks[b].clone());
        let mut buf = bufs.get();
        let g = tile(&mut buf, x, a.clone(), x, b.clone());
        update_cols(tb, g, p.q.refs(b.clone()), p.q.refs(a.clone()), rmax, p.pair, None);
        update_rows(ta, g, p.q.refs(a), p.q.refs(b), 2.0 * rmax, p.pair);
    };
    rayon::scope(|sc| {
        for _ in 0..rayon::current_num_threads() {
            sc.spawn(|_| loop {
                let next = lock(&schedule).take();
                match next {
                    Next::Tile(pair) => {
                        one(pair);
                        lock(&schedule).release(pair);
                    }
                    Next::Wait => std::thread::yield_now(),
                    Next::Done => break,
                }
            });
        }
    });
}

/// `m` locked, whether or not a thread panicked while holding it (a panic ends the search
/// anyway).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The tiles of one data set still to run, and the blocks that threads hold.
struct Schedule {
    pairs: Vec<(usize, usize)>,
    taken: Vec<bool>,
    /// Pairs before this one are all taken.
    first: usize,
    busy: Vec<bool>,
}

/// What a thread does next.
enum Next {
    Tile((usize, usize)),
    /// Every tile left holds a block another thread holds.
    Wait,
    Done,
}

impl Schedule {
    fn new(pairs: Vec<(usize, usize)>, blocks: usize) -> Self {
        Self { taken: vec![false; pairs.len()], pairs, first: 0, busy: vec![false; blocks] }
    }

    /// The first pair not yet taken whose blocks are both free, taken.
    fn take(&mut self) -> Next {
        while self.first < self.pairs.len() && self.taken[self.first] {
            self.first += 1;
        }
        if self.first == self.pairs.len() {
            return Next::Done;
        }
        for t in self.first..self.pairs.len() {
            let (a, b) = self.pairs[t];
            if !self.taken[t] && !self.busy[a] && !self.busy[b] {
                (self.taken[t], self.busy[a], self.busy[b]) = (true, true, true);
                return Next::Tile((a, b));
            }
        }
        Next::Wait
    }

    fn release(&mut self, (a, b): (usize, usize)) {
        (self.busy[a], self.busy[b]) = (false, false);
    }
}

/// `tops` cut into the blocks.
fn split<'t, S>(tops: &'t mut [S], blocks: &[Range<usize>]) -> Vec<Option<&'t mut [S]>> {
    let mut rest = tops;
    blocks
        .iter()
        .map(|r| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(r.len());
            rest = tail;
            Some(head)
        })
        .collect()
}

/// The rounds of a round-robin tournament on `n` players (circle method): every pair
/// `(a, b)`, `a < b`, exactly once, and no player twice in a round.
fn round_robin(n: usize) -> Vec<Vec<(usize, usize)>> {
    let m = n + n % 2; // a bye when n is odd
    let ring = |r: usize, i: usize| if i == 0 { m - 1 } else { (r + i - 1) % (m - 1) };
    (0..m.saturating_sub(1))
        .map(|r| {
            (0..m / 2)
                .map(|i| (ring(r, i), ring(r, m - 1 - i)))
                .filter(|&(a, b)| a < n && b < n)
                .map(|(a, b)| (a.min(b), a.max(b)))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_meets_every_pair_once_and_no_block_twice_a_round() {
        for n in 1..=13 {
            let mut met = std::collections::BTreeSet::new();
            for round in round_robin(n) {
                let mut seen = vec![false; n];
                for (a, b) in round {
                    assert!(a < b && b < n);
                    assert!(!seen[a] && !seen[b], "n = {n}: a block twice in one round");
                    seen[a] = true;
                    seen[b] = true;
                    assert!(met.insert((a, b)), "n = {n}: ({a}, {b}) twice");
                }
            }
            assert_eq!(met.len(), n * (n - 1) / 2, "n = {n}");
        }
    }

    /// Two threads taking tiles as they come free, one finishing before the other: every
    /// pair once, never a block held by both, and `Done` only when all are taken.
    #[test]
    fn the_schedule_gives_every_tile_once_and_never_a_held_block() {
        for n in [2, 3, 5, 40] {
            let mut s = Schedule::new(round_robin(n).concat(), n);
            let (mut held, mut met) = (Vec::<(usize, usize)>::new(), std::collections::BTreeSet::new());
            let mut step = 0usize;
            loop {
                // Hold up to two tiles; release the older one every third step.
                if held.len() == 2 || (step % 3 == 2 && !held.is_empty()) {
                    s.release(held.remove(0));
                }
                step += 1;
                match s.take() {
                    Next::Tile((a, b)) => {
                        assert!(a < b && held.iter().all(|&(c, d)| ![c, d].contains(&a) && ![c, d].contains(&b)));
                        assert!(met.insert((a, b)), "n = {n}: ({a}, {b}) twice");
                        held.push((a, b));
                    }
                    Next::Wait => assert!(!held.is_empty(), "n = {n}: waiting on nothing"),
                    Next::Done => break,
                }
            }
            assert_eq!(met.len(), n * (n - 1) / 2, "n = {n}");
        }
    }

    #[test]
    fn blocks_cover_the_points_at_multiples_of_32() {
        for n in [1, 2, 3, 5, 255, 256, 257, 1000, 10_000, 10_001, 60_000] {
            let b = blocks(n);
            assert_eq!(b[0].start, 0);
            assert_eq!(b.last().unwrap().end, n);
            assert!(b.windows(2).all(|w| w[0].end == w[1].start));
            assert!(b.iter().all(|r| !r.is_empty() && r.len() <= TILE && r.start % 32 == 0));
            // All but the last of one size.
            assert!(b[..b.len() - 1].iter().all(|r| r.len() == b[0].len()), "n = {n}");
        }
        assert_eq!(blocks(10_000).len(), 40);
        assert_eq!(blocks(1000).len(), 4);
    }
}
