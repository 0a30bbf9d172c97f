"""The convergence engine: decisions over a live migration's job-statistics
samples (pure functions; the hook adapter in virt/libvirt/convergence.py
answers Nova's monitor loop with them)."""
