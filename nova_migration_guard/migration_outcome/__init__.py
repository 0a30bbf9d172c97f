"""The migration_outcome guard: a live migration that fails late never
loses its guest.  ``reconcile`` decides where the guest really runs."""
