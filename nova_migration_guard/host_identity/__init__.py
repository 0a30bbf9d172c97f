"""The host_identity guard: a nova-compute whose identity changed or is
doubled refuses to start, and never destroys guests it does not own.
``ownership`` decides whose a hypervisor node is."""
