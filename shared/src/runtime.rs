//! Process-wide settings of candle's CPU back end that suit these small networks.

use std::num::NonZero;

/// candle's variable for the threads of its element-wise operations.
const ELEMENTWISE_THREADS: &str = "CANDLE_NUM_THREADS";

/// rayon's variable for the size of its pool, which candle also reads for matrix multiplies.
const POOL_THREADS: &str = "RAYON_NUM_THREADS";

/// Settles the thread counts that candle reads from the environment, leaving alone any that
/// the environment already sets:
///
/// - element-wise operations run on the calling thread (`CANDLE_NUM_THREADS=1`). candle hands
///   them to a pool whose threads spin between operations; on a few cores that spinning takes
///   time from the matrix multiplies, while these networks' tensors are too small to gain
///   from being split (training runs about 4 % faster on 2 cores);
/// - matrix multiplies and rayon use one thread per available core (`RAYON_NUM_THREADS`),
///   which is rayon's own default. Without the variable candle counts the physical cores by
///   reading `/proc/cpuinfo` on every matrix multiply, which costs more than the multiply of
///   a single frame.
///
/// # Safety
///
/// Writes the process environment: call it first thing in `main`, before any other thread
/// exists.
#[allow(unsafe_code)]
pub unsafe fn configure_cpu_threads() {
    let cores = std::thread::available_parallelism().map_or(1, NonZero::get);
    for (name, value) in [(ELEMENTWISE_THREADS, "1".to_owned()), (POOL_THREADS, cores.to_string())]
    {
        if std::env::var_os(name).is_none() {
            // SAFETY: the caller guarantees that no other thread reads or writes the
            // environment.
            unsafe { std::env::set_var(name, value) };
        }
    }
}
