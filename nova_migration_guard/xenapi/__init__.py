"""Helpers for Nova's XenAPI driver (Nova 21.x, Ussuri, and older).

The XenAPI driver was removed in Nova 22.0.0.  The fixes for it ship as the
``patches/nova/21.x`` series; this package holds the logic of those fixes
as pure functions that tools and tests can use without Nova or XenServer.
"""
