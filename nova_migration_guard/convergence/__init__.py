"""The convergence engine: decisions over a live migration's job-statistics
samples (pure functions; the driver's monitor loop does the I/O)."""
