//! Process-wide settings of candle's CPU back end that suit these small networks.

/// candle's variable for the threads of its element-wise operations.
const ELEMENTWISE_THREADS: &str = "CANDLE_NUM_THREADS";

/// Runs candle's element-wise operations on the calling thread, unless `CANDLE_NUM_THREADS`
/// already says otherwise. Matrix multiplies keep all of rayon's threads.
///
/// candle hands element-wise work to a pool whose threads spin between operations; on a few
/// cores that spinning takes time from the matrix multiplies and the data loading, while the
/// tensors of these networks are too small to gain from being split. Measured on 2 cores,
/// training runs about 4 % faster with the pool off.
///
/// # Safety
///
/// Writes the process environment: call it first thing in `main`, before any other thread
/// exists.
#[allow(unsafe_code)]
pub unsafe fn single_threaded_elementwise_ops() {
    if std::env::var_os(ELEMENTWISE_THREADS).is_none() {
        // SAFETY: the caller guarantees that no other thread reads or writes the environment.
        unsafe { std::env::set_var(ELEMENTWISE_THREADS, "1") };
    }
}
