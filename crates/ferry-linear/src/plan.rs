//! Which rows each step of training uses. Every party derives the same plan from the shared
//! parameters, so batches line up without sending row indices.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// The batches of one epoch: row indices into the aligned training set.
pub fn epoch_batches(
    n_rows: usize,
    batch_size: Option<usize>,
    shuffle: bool,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n_rows).collect();
    if shuffle {
        // One stream per epoch of a generator keyed by the seed: independent orders that every
        // party reproduces.
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        rng.set_stream(epoch as u64);
        for i in (1..n_rows).rev() {
            let j = (rand::Rng::next_u64(&mut rng) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    let size = batch_size.unwrap_or(n_rows).clamp(1, n_rows.max(1));
    order.chunks(size).map(<[usize]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_row_once_per_epoch() {
        for shuffle in [false, true] {
            let b = epoch_batches(103, Some(10), shuffle, 7, 2);
            assert_eq!(b.len(), 11);
            assert_eq!(b[10].len(), 3);
            let mut all: Vec<usize> = b.concat();
            all.sort();
            assert_eq!(all, (0..103).collect::<Vec<_>>());
        }
    }

    #[test]
    fn order_depends_on_seed_and_epoch_only() {
        let a = epoch_batches(50, Some(50), true, 1, 0);
        assert_eq!(a, epoch_batches(50, Some(50), true, 1, 0));
        assert_ne!(a, epoch_batches(50, Some(50), true, 1, 1));
        assert_ne!(a, epoch_batches(50, Some(50), true, 2, 0));
        assert_eq!(
            epoch_batches(5, None, false, 1, 0),
            vec![vec![0, 1, 2, 3, 4]]
        );
    }
}
