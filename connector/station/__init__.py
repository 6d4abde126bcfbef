"""The station authority: enrolment (CA + X.509), the DAPS-compatible token service and the
registry of participants' self-descriptions. `connector station init|run|rotate-key`."""
