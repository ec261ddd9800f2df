//! [`Slot`]: the newest snapshot of one part's state, published by the part
//! that owns it and read by the others (the API, the deciders, the
//! dashboard's event stream). Built on `tokio::sync::watch`: a reader holds
//! the value only for the time of a clone, and can wait for the next one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// One published value. Cheap to clone: every clone is the same slot.
pub struct Slot<T>(Arc<watch::Sender<T>>, Arc<AtomicU64>);

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot(self.0.clone(), self.1.clone())
    }
}

impl<T: Default> Default for Slot<T> {
    fn default() -> Self {
        Slot::new(T::default())
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Slot").field(&*self.0.borrow()).finish()
    }
}

impl<T> Slot<T> {
    pub fn new(value: T) -> Self {
        Slot(
            Arc::new(watch::Sender::new(value)),
            Arc::new(AtomicU64::new(0)),
        )
    }

    /// How many values were published: changes with every publication.
    pub fn version(&self) -> u64 {
        self.1.load(Ordering::SeqCst)
    }

    /// Reads the newest value in place.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0.borrow())
    }

    /// Publishes a new value.
    pub fn set(&self, value: T) {
        self.0.send_replace(value);
        self.1.fetch_add(1, Ordering::SeqCst);
    }

    /// Changes the value in place and publishes it.
    pub fn update(&self, f: impl FnOnce(&mut T)) {
        self.0.send_modify(f);
        self.1.fetch_add(1, Ordering::SeqCst);
    }

    /// A receiver that wakes when the next value is published.
    pub fn subscribe(&self) -> watch::Receiver<T> {
        self.0.subscribe()
    }
}

impl<T: Clone> Slot<T> {
    /// A copy of the newest value.
    pub fn get(&self) -> T {
        self.0.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_see_the_newest_value_and_can_wait_for_the_next() {
        let slot = Slot::new(1);
        let reader = slot.clone();
        let mut changes = reader.subscribe();
        assert_eq!(reader.get(), 1);
        slot.set(2);
        changes.changed().await.unwrap();
        assert_eq!(*changes.borrow_and_update(), 2);
        slot.update(|v| *v += 1);
        assert_eq!(reader.read(|v| *v * 10), 30);
        assert_eq!(reader.version(), 2);
    }
}
