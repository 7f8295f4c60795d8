//! A dedicated writer thread for an append-only file: callers queue items
//! without blocking, the thread writes whatever has queued up as one batch
//! with one fsync (group commit), then acknowledges each waiter. The async
//! runtime's worker threads never wait on the disk; a caller that needs
//! durability awaits its acknowledgement.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Called on the writer thread with the outcome of the batch an item was in.
pub type Ack = Box<dyn FnOnce(io::Result<()>) + Send>;

/// The most items written (and synced) as one batch; bounds the latency of
/// the first waiter when a flood is queued.
const MAX_BATCH: usize = 4096;

/// What the writer thread does with a batch.
pub trait Sink: Send + 'static {
    /// The queued item.
    type Item: Send + 'static;

    /// Writes `items` (in queue order) and makes them durable, unless the
    /// sink decides nobody needs them durable yet (then [`Sink::sync`] or a
    /// later batch does).
    fn write_batch(&mut self, items: Vec<Self::Item>) -> io::Result<()>;

    /// Makes durable what earlier batches wrote without syncing: called for
    /// a flush, and when the thread stops.
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Job<T> = (Option<T>, Option<Ack>);

/// The handle on a writer thread; dropping it writes what is queued, then
/// stops the thread.
pub struct Writer<T: Send + 'static> {
    tx: Option<mpsc::Sender<Job<T>>>,
    thread: Option<JoinHandle<()>>,
    batches: Arc<AtomicU64>,
}

impl<T: Send + 'static> Writer<T> {
    /// Starts a thread named `name` writing into `sink`.
    pub fn spawn<S: Sink<Item = T>>(name: &str, mut sink: S) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job<T>>();
        let batches = Arc::new(AtomicU64::new(0));
        let counted = batches.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    while jobs.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(job) => jobs.push(job),
                            Err(_) => break,
                        }
                    }
                    let mut items = Vec::with_capacity(jobs.len());
                    let mut acks = Vec::new();
                    for (item, ack) in jobs {
                        items.extend(item);
                        acks.extend(ack);
                    }
                    let result = match items.is_empty() {
                        // A flush: what is written must be durable too.
                        true => sink.sync(),
                        false => {
                            counted.fetch_add(1, Ordering::Relaxed);
                            sink.write_batch(items)
                        }
                    };
                    for ack in acks {
                        // io::Error is not Clone: each waiter gets its own copy.
                        ack(match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                        });
                    }
                }
                if let Err(e) = sink.sync() {
                    tracing::warn!(error = %crate::error_chain::Chain(&e), "cannot sync the file on stopping its writer; its last lines may be lost in a crash");
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
            batches,
        })
    }

    /// Queues `item` (when given) and `ack`, called once the batch holding
    /// them is written. Never blocks. False when the thread is gone.
    pub fn send(&self, item: Option<T>, ack: Option<Ack>) -> bool {
        match &self.tx {
            Some(tx) => tx.send((item, ack)).is_ok(),
            None => false,
        }
    }

    /// Queues `item`; resolves once it (and all queued before) is durable.
    pub async fn write(&self, item: T) -> io::Result<()> {
        let (ack, done) = tokio::sync::oneshot::channel();
        let ack: Ack = Box::new(move |r| {
            let _ = ack.send(r);
        });
        if !self.send(Some(item), Some(ack)) {
            return Err(stopped());
        }
        done.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Resolves once everything queued before is durable.
    pub async fn flush(&self) -> io::Result<()> {
        let (ack, done) = tokio::sync::oneshot::channel();
        let ack: Ack = Box::new(move |r| {
            let _ = ack.send(r);
        });
        if !self.send(None, Some(ack)) {
            return Err(stopped());
        }
        done.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// [`Writer::flush`] for threads that may block (start-up, tests).
    pub fn flush_blocking(&self) -> io::Result<()> {
        let (ack, done) = mpsc::channel();
        let ack: Ack = Box::new(move |r| {
            let _ = ack.send(r);
        });
        if !self.send(None, Some(ack)) {
            return Err(stopped());
        }
        done.recv().unwrap_or_else(|_| Err(stopped()))
    }

    /// How many batches were written so far (each one write and one fsync).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
}

impl<T: Send + 'static> Drop for Writer<T> {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish the queue, then exit.
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the writer thread has stopped")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Collect(Arc<Mutex<Vec<Vec<u32>>>>);

    impl Sink for Collect {
        type Item = u32;
        fn write_batch(&mut self, items: Vec<u32>) -> io::Result<()> {
            self.0.lock().unwrap().push(items);
            Ok(())
        }
    }

    #[test]
    fn what_queues_while_a_batch_is_written_goes_in_the_next_one() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let w = Writer::spawn("test-writer", Collect(seen.clone())).unwrap();
        // Hold the thread inside an acknowledgement while items queue up.
        let (release, held) = mpsc::channel::<()>();
        assert!(w.send(
            None,
            Some(Box::new(move |_| {
                let _ = held.recv();
            }))
        ));
        for i in 0..10 {
            assert!(w.send(Some(i), None));
        }
        release.send(()).unwrap();
        w.flush_blocking().unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(0..10).collect::<Vec<_>>()]);
        assert_eq!(w.batches(), 1);
    }
}
