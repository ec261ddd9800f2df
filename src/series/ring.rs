//! A fixed-capacity ring of points keyed by consecutive integers (seconds or
//! minutes). Pushing a key that skips ahead fills the hole with copies of
//! nothing: callers push every key in order.

use std::collections::VecDeque;

pub struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
    /// Key of the newest item.
    last_key: Option<i64>,
}

impl<T> Ring<T> {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            items: VecDeque::with_capacity(capacity),
            capacity,
            last_key: None,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Appends the item for `key`. Keys must increase by one; a key that does
    /// not restarts the ring, so a clock jump never misaligns keys and items.
    pub fn push(&mut self, key: i64, item: T) {
        if let Some(last) = self.last_key {
            if key != last + 1 {
                self.items.clear();
            }
        }
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item);
        self.last_key = Some(key);
    }

    /// Appends the item for `key` after a gap: the missing keys get `fill`,
    /// so history on either side of a pause (a restart) stays aligned. A gap
    /// longer than the ring restarts it, as `push` does.
    pub fn push_after_gap(&mut self, key: i64, item: T, fill: T)
    where
        T: Clone,
    {
        if let Some(last) = self.last_key {
            let gap = key - last - 1;
            if gap > 0 && (gap as usize) < self.capacity {
                for k in last + 1..key {
                    self.push(k, fill.clone());
                }
            }
        }
        self.push(key, item);
    }

    /// The key of the newest item.
    pub fn last_key(&self) -> Option<i64> {
        self.last_key
    }

    fn first_key(&self) -> Option<i64> {
        self.last_key.map(|l| l - self.items.len() as i64 + 1)
    }

    pub fn get(&self, key: i64) -> Option<&T> {
        let first = self.first_key()?;
        if key < first {
            return None;
        }
        self.items.get((key - first) as usize)
    }

    /// The items of keys `from..to` in order, None for keys the ring does
    /// not hold (older than its oldest, or newer than its newest).
    pub fn range(&self, from: i64, to: i64) -> impl Iterator<Item = Option<&T>> {
        let total = (to - from).max(0) as usize;
        let (lo, hi) = match (self.first_key(), self.last_key) {
            (Some(first), Some(last)) => (from.max(first), to.min(last + 1)),
            _ => (0, 0),
        };
        let (before, held, after) = if lo < hi {
            let first = self.first_key().unwrap_or(lo);
            let a = (lo - first) as usize;
            let b = (hi - first) as usize;
            (
                (lo - from) as usize,
                Some(self.items.range(a..b).map(Some)),
                (to - hi) as usize,
            )
        } else {
            (total, None, 0)
        };
        std::iter::repeat_n(None, before)
            .chain(held.into_iter().flatten())
            .chain(std::iter::repeat_n(None, after))
    }

    /// The newest `n` items, oldest first, with their keys.
    pub fn last_n(&self, n: usize) -> impl Iterator<Item = (i64, &T)> {
        let n = n.min(self.items.len());
        let skip = self.items.len() - n;
        let first = self.first_key().unwrap_or(0);
        self.items
            .iter()
            .enumerate()
            .skip(skip)
            .map(move |(i, t)| (first + i as i64, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_gives_every_key_held_or_not() {
        let mut r = Ring::new(3);
        let empty: Vec<Option<&i64>> = r.range(5, 8).collect();
        assert_eq!(empty, [None, None, None]);
        for k in 10..15 {
            r.push(k, k * 100);
        }
        let got: Vec<Option<&i64>> = r.range(10, 16).collect();
        assert_eq!(
            got,
            [None, None, Some(&1200), Some(&1300), Some(&1400), None]
        );
        let got: Vec<Option<&i64>> = r.range(13, 14).collect();
        assert_eq!(got, [Some(&1300)]);
        assert_eq!(r.range(20, 22).count(), 2);
        assert_eq!(r.range(22, 20).count(), 0);
        // Every key agrees with `get`.
        for from in 8..17 {
            for to in from..18 {
                let got: Vec<Option<&i64>> = r.range(from, to).collect();
                let want: Vec<Option<&i64>> = (from..to).map(|k| r.get(k)).collect();
                assert_eq!(got, want, "{from}..{to}");
            }
        }
    }

    #[test]
    fn keeps_the_newest_capacity_items() {
        let mut r = Ring::new(3);
        for k in 10..15 {
            r.push(k, k * 100);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(
            r.last_n(10).collect::<Vec<_>>(),
            vec![(12, &1200), (13, &1300), (14, &1400)]
        );
        assert_eq!(r.get(11), None);
        assert_eq!(r.get(13), Some(&1300));
        assert_eq!(r.get(15), None);
    }

    #[test]
    fn a_key_jump_restarts() {
        let mut r = Ring::new(5);
        r.push(1, 'a');
        r.push(2, 'b');
        r.push(9, 'c');
        assert_eq!(r.last_n(5).collect::<Vec<_>>(), vec![(9, &'c')]);
    }

    #[test]
    fn last_n_of_fewer() {
        let mut r = Ring::new(5);
        r.push(0, 1);
        r.push(1, 2);
        assert_eq!(r.last_n(1).collect::<Vec<_>>(), vec![(1, &2)]);
        assert!(Ring::<u8>::new(2).last_n(3).next().is_none());
    }
}
