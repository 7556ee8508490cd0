//! A fixed pool of scoped threads over a slice, results in input order. Hand-written
//! (20 lines) instead of rayon: each case is a blocking subprocess wait, and the pool must
//! stop handing out work as soon as the harness is interrupted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::sandbox::interrupt;

/// `f` over `items` on `jobs` threads. `None` for items not started (interrupted).
pub fn map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<Option<R>> {
    map_with_events(items, jobs, f, |_| {})
}

/// What [`map_with_events`] tells its watcher, on the worker thread, as it happens.
pub enum Event<'a, T, R> {
    Started(usize, &'a T),
    Done(usize, &'a T, &'a R),
}

/// [`map`], calling `watch` when an item starts and when it is done (for progress and
/// per-case lines as cases finish).
pub fn map_with_events<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
    watch: impl Fn(Event<'_, T, R>) + Sync,
) -> Vec<Option<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= items.len() || interrupt::interrupted() {
                    break;
                }
                watch(Event::Started(i, &items[i]));
                let r = f(&items[i]);
                watch(Event::Done(i, &items[i], &r));
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}
