"""Privacy by design: retention, the end of the emergency, subject access.

The package holds what keeps the platform's promise that it collects little,
forgets on time and shows each resident what it holds about them: purging
by retention period, the sunset that deletes all personal data, signed heads
of the audit log, and the detector that keeps identity numbers out of logs.
"""
